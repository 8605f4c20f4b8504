"""Governance invariants: the consortium is never empty and its threshold is reachable; proposals
are numbered below the next id, approved only by addresses, and decided with an outcome."""

from __future__ import annotations

from ...core.errors import InvariantBroken
from ...core.state import PrefixReader
from ...core.types import ADDRESS_LEN
from .handlers import _PROPOSAL, MAX_VALIDATOR_POWER, get_consortium
from .keys import NEXT_PROPOSAL_ID_KEY, PROPOSALS_PREFIX, VALIDATORS_PREFIX, proposal_key


def check_consortium(state: PrefixReader) -> None:
    """Raise InvariantBroken if the threshold cannot be met, the members are not distinct addresses,
    or a proposal or validator is malformed."""
    consortium = get_consortium(state)
    if not 1 <= consortium.threshold <= len(consortium.members):
        raise InvariantBroken(f"governance: threshold {consortium.threshold} with {len(consortium.members)} members")
    members = consortium.members
    if members != sorted(set(members)) or any(len(m) != ADDRESS_LEN for m in members):
        raise InvariantBroken("governance: members are not distinct sorted addresses")
    check_proposals(state)
    for key, raw in state.iter_prefix(VALIDATORS_PREFIX):
        if not 1 <= int.from_bytes(raw, "big") <= MAX_VALIDATOR_POWER:
            raise InvariantBroken(f"governance: validator {key[-32:].hex()} has power {int.from_bytes(raw, 'big')}")


def check_proposals(state: PrefixReader) -> None:
    """Raise InvariantBroken on a proposal out of numbering, with odd approvals, or undecided outcome."""
    raw_next = state.get(NEXT_PROPOSAL_ID_KEY)
    next_id = 1 if raw_next is None else int.from_bytes(raw_next, "big")
    for key, raw in state.iter_prefix(PROPOSALS_PREFIX):
        proposal = _PROPOSAL.decode_lenient(raw)
        if proposal_key(proposal.id) != key or not 1 <= proposal.id < next_id:
            raise InvariantBroken(f"governance: proposal {proposal.id} stored under {key.hex()}, next id {next_id}")
        approvals = proposal.approvals
        if approvals != sorted(set(approvals)) or any(len(a) != ADDRESS_LEN for a in approvals):
            raise InvariantBroken(f"governance: proposal {proposal.id}'s approvals are not distinct addresses")
        # An open proposal has no outcome yet, an executed one "ok", a failed one the reason.
        outcome_fits = {"open": proposal.outcome == "", "executed": proposal.outcome == "ok",
                        "failed": proposal.outcome != "", "expired": True}.get(proposal.status, False)
        if not outcome_fits:
            raise InvariantBroken(f"governance: proposal {proposal.id} is {proposal.status!r} "
                                  f"with outcome {proposal.outcome!r}")
        if proposal.expiry_height < proposal.submit_height:
            raise InvariantBroken(f"governance: proposal {proposal.id} expires before it was submitted")
