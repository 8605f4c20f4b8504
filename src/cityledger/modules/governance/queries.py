"""Governance queries."""

from __future__ import annotations

from ...core.encoding import to_json
from ...core.state import PrefixReader, StateReader
from .handlers import get_consortium, get_proposal
from .keys import NEXT_PROPOSAL_ID_KEY, VALIDATORS_PREFIX
from .messages import MAX_PROPOSAL_ID

MAX_QUERY_PROPOSALS = 50  # proposals answered per list query; page back with "before"


def query_consortium(state: StateReader, args: dict[str, str]) -> dict:
    """Members (as city addresses) and threshold."""
    consortium = get_consortium(state)
    return {"members": ["city" + m.hex() for m in consortium.members], "threshold": consortium.threshold}


def query_proposal(state: StateReader, args: dict[str, str]) -> dict:
    """One proposal by id."""
    try:
        proposal_id = int(args.get("id", ""))
    except ValueError:
        raise ValueError(f"id: expected an integer proposal id, got {args.get('id')!r}") from None
    if not 1 <= proposal_id <= MAX_PROPOSAL_ID:
        raise ValueError(f"id: expected a proposal id from 1 to {MAX_PROPOSAL_ID}, got {proposal_id}")
    proposal = get_proposal(state, proposal_id)
    if proposal is None:
        raise LookupError(f"id: no proposal {proposal_id}")
    return to_json(proposal)


def query_proposals(state: StateReader, args: dict[str, str]) -> dict:
    """Proposals newest first, with their approvals (the votes), below {'before'}: point reads by id."""
    raw = state.get(NEXT_PROPOSAL_ID_KEY)
    last = 0 if raw is None else int.from_bytes(raw, "big") - 1
    text = args.get("before", str(last + 1))
    if not (isinstance(text, str) and text.isascii() and text.isdigit() and len(text) <= 19) or int(text) < 1:
        raise ValueError(f"before: expected a proposal id from 1 to {MAX_PROPOSAL_ID}, got {str(text)[:32]!r}")
    top = min(int(text) - 1, last)
    ids = range(top, max(top - MAX_QUERY_PROPOSALS, 0), -1)
    proposals = [to_json(p) for p in (get_proposal(state, i) for i in ids) if p is not None]
    return {"count": last, "proposals": proposals, "before": ids[-1] if ids and ids[-1] > 1 else None}


def query_validators(state: PrefixReader, args: dict[str, str]) -> dict:
    """The validator set: hex pub key and power, sorted by key."""
    out = [{"pub_key": key[-32:].hex(), "power": int.from_bytes(value, "big")}
           for key, value in state.iter_prefix(VALIDATORS_PREFIX)]
    return {"validators": out}
