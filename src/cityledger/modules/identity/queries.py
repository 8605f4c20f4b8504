"""Identity queries: DID resolution, anchored AnonCreds objects, the trusted-issuer registry."""

from __future__ import annotations

from typing import Any

from ...core.encoding import decoder
from ...core.state import StateReader
from .anchors import (
    compute_cred_def_json,
    compute_rev_reg_def_json,
    compute_schema_json,
    compute_status_list_json,
    get_cred_def,
    get_rev_reg_def,
    get_schema,
    get_status_list,
)
from .did import is_did, render_resolution
from .handlers import get_did
from .keys import ACCREDITATIONS_PREFIX
from .messages import Accreditation

_ACCREDITATION = decoder(Accreditation)


def _arg(args: dict[str, str], name: str) -> str:
    value = args.get(name, "")
    if not value:
        raise ValueError(f"{name}: required")
    return value


def resolve_did(state: StateReader, did: str) -> dict[str, Any]:
    """The W3C DID resolution result of a DID in this state (any height's state); notFound if absent."""
    return render_resolution(get_did(state, did) if is_did(did) else None, did)


def query_did(state: StateReader, args: dict[str, str]) -> dict[str, Any]:
    """The W3C DID resolution result of {'did'}."""
    did = _arg(args, "did")
    if not is_did(did):
        raise ValueError(f"did: expected a did:city DID, got {did!r}")
    if get_did(state, did) is None:
        raise LookupError(f"did: no DID {did}")
    return resolve_did(state, did)


def query_schema(state: StateReader, args: dict[str, str]) -> dict[str, Any]:
    """An anchored schema as AnonCreds JSON, by {'id'}."""
    record = get_schema(state, _arg(args, "id"))
    if record is None:
        raise LookupError(f"id: no anchored schema {args['id']!r}")
    return {"schema": compute_schema_json(record), "height": record.height}


def query_cred_def(state: StateReader, args: dict[str, str]) -> dict[str, Any]:
    """An anchored credential definition as AnonCreds JSON, by {'id'}."""
    record = get_cred_def(state, _arg(args, "id"))
    if record is None:
        raise LookupError(f"id: no anchored credential definition {args['id']!r}")
    return {"cred_def": compute_cred_def_json(record), "height": record.height}


def query_rev_reg_def(state: StateReader, args: dict[str, str]) -> dict[str, Any]:
    """An anchored revocation registry definition as AnonCreds JSON, by {'id'}."""
    record = get_rev_reg_def(state, _arg(args, "id"))
    if record is None:
        raise LookupError(f"id: no anchored revocation registry {args['id']!r}")
    return {"rev_reg_def": compute_rev_reg_def_json(record), "height": record.height}


def query_status_list(state: StateReader, args: dict[str, str]) -> dict[str, Any]:
    """A registry's latest status list (or the one at {'timestamp'}) as AnonCreds JSON, by {'id'}."""
    rev_reg_def_id = _arg(args, "id")
    registry = get_rev_reg_def(state, rev_reg_def_id)
    timestamp = args.get("timestamp")
    try:
        at = int(timestamp) if timestamp else None
    except ValueError:
        raise ValueError(f"timestamp: expected an integer height, got {timestamp!r}") from None
    status = None if registry is None else get_status_list(state, rev_reg_def_id, at)
    if status is None:
        raise LookupError(f"id: no status list for {rev_reg_def_id!r}")
    return {"status_list": compute_status_list_json(registry, status)}


def query_issuers(state: StateReader, args: dict[str, str]) -> dict[str, Any]:
    """Accreditations, optionally only those of {'credential_type'} or of {'did'}."""
    wanted_type, wanted_did = args.get("credential_type"), args.get("did")
    out = []
    for _, raw in getattr(state, "iter_prefix")(ACCREDITATIONS_PREFIX):
        item = _ACCREDITATION.decode_lenient(raw)
        if (wanted_type and item.credential_type != wanted_type) or (wanted_did and item.did != wanted_did):
            continue
        out.append({"did": item.did, "credential_type": item.credential_type, "height": item.height})
    return {"accreditations": out}
