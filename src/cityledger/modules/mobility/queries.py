"""Mobility queries: /mobility/programme, /mobility/programmes, /mobility/enrollment, /mobility/claim."""

from __future__ import annotations

from typing import Any

from ...core.encoding import decoder
from ...core.state import StateReader
from ...core.types import address_from_str, address_to_str
from .handlers import MAX_ID, get_enrollment, get_programme
from .keys import MOBILITY_ACCOUNT, NEXT_PROGRAMME_ID_KEY, commitment_key
from .messages import ClaimRecord, EnrollmentRecord

_CLAIM = decoder(ClaimRecord)
MAX_QUERY_PROGRAMMES = 100  # programmes answered per list query; page back with "before"


def _int(args: dict[str, str], name: str, low: int) -> int:
    text = args.get(name, "")
    if not (isinstance(text, str) and text.isascii() and text.isdigit() and len(text) <= 19) or int(text) < low:
        raise ValueError(f"{name}: expected a decimal number {low} to {MAX_ID}, got {str(text)[:32]!r}")
    return int(text)


def query_programme(state: StateReader, args: dict[str, str]) -> dict[str, Any]:
    """A programme by {'id'}: its terms, budget and what remains."""
    programme_id = _int(args, "id", 1)
    record = get_programme(state, programme_id)
    if record is None:
        raise LookupError(f"id: no programme {programme_id}")
    return {"programme_id": record.programme_id, "sponsor": address_to_str(record.sponsor), "model": record.model,
            "budget": record.budget, "remaining": record.remaining, "min_score": record.min_score,
            "reward_per_trip": record.reward_per_trip, "reward_per_km": record.reward_per_km,
            "cap_per_trip": record.cap_per_trip, "cap_per_enrollee": record.cap_per_enrollee,
            "period_blocks": record.period_blocks, "expiry_height": record.expiry_height, "issuer": record.issuer,
            "claims": record.claims, "withdrawn": record.withdrawn, "created_height": record.created_height,
            "account": address_to_str(MOBILITY_ACCOUNT)}


def query_programmes(state: StateReader, args: dict[str, str]) -> dict[str, Any]:
    """Programmes newest first, below {'before'} (default: all), at most MAX_QUERY_PROGRAMMES: point reads by id."""
    raw = state.get(NEXT_PROGRAMME_ID_KEY)
    last = 0 if raw is None else int.from_bytes(raw, "big")
    top = min(_int(args, "before", 1) - 1, last) if "before" in args else last
    ids = range(top, max(top - MAX_QUERY_PROGRAMMES, 0), -1)
    programmes = [query_programme(state, {"id": str(programme_id)}) for programme_id in ids]
    return {"count": last, "programmes": programmes, "before": ids[-1] if ids and ids[-1] > 1 else None}


def query_enrollment(state: StateReader, args: dict[str, str]) -> dict[str, Any]:
    """An account's enrollment by {'programme', 'period', 'account'}."""
    programme_id = _int(args, "programme", 1)
    account = address_from_str(args.get("account", ""), "account")
    programme = get_programme(state, programme_id)
    if programme is None:
        raise LookupError(f"programme: no programme {programme_id}")
    period = _int(args, "period", 0)
    record = get_enrollment(state, programme_id, period, account)
    if record is None:
        raise LookupError(f"account: {address_to_str(account)} is not enrolled in programme {programme_id} for "
                          f"period {period}")
    return render_enrollment(record)


def render_enrollment(record: EnrollmentRecord) -> dict[str, Any]:
    """An enrollment as queries answer it: what one account was paid in one programme period."""
    return {"programme_id": record.programme_id, "period": record.period, "account": address_to_str(record.account),
            "pseudonym_key": {"scheme": record.pseudonym_key.scheme, "key": record.pseudonym_key.key.hex()},
            "paid": record.paid, "trips": record.trips}


def query_claim(state: StateReader, args: dict[str, str]) -> dict[str, Any]:
    """A paid claim by {'programme', 'commitment'} (hex)."""
    programme_id = _int(args, "programme", 1)
    text = args.get("commitment", "")
    try:
        commitment = bytes.fromhex(text) if isinstance(text, str) and len(text) == 64 else b""
    except ValueError:
        commitment = b""
    if len(commitment) != 32:
        raise ValueError(f"commitment: expected 64 hex digits, got {str(text)[:80]!r}")
    raw = state.get(commitment_key(programme_id, commitment))
    if raw is None:
        raise LookupError(f"commitment: no paid claim {text} in programme {programme_id}")
    record = _CLAIM.decode_lenient(raw)
    return {"programme_id": record.programme_id, "trip_id": record.trip_id.hex(), "commitment": record.commitment.hex(),
            "score": record.score, "distance_km": record.distance_km, "reward": record.reward, "height": record.height}
