"""Identity genesis: the founding organisations' DIDs and their accreditations.

    {"dids": [{"controller": {"threshold": 1, "keys": [{"scheme": "ed25519", "key": "<hex>"}]},
               "salt": "<hex>", "keys": [{"fragment", "scheme", "key", "purposes"}],
               "services": [{"fragment", "type", "endpoint"}], "accreditations": ["resident-id"]}]}

The DID of each entry is computed as for identity/1.0/create_did (see compute_did).
"""

from __future__ import annotations

from typing import Any

from ...core.encoding import encode
from ...core.errors import TxError
from ...core.keys import PublicKey, make_signer, scheme_from_name
from ...core.state import Overlay
from ..base import Context
from .handlers import create_did_record
from .keys import accreditation_key
from .messages import KIND_ORGANISATION, Accreditation, Service, VerificationKey
from .validation import is_credential_type


def _public_key(entry: dict[str, Any], field: str) -> PublicKey:
    try:
        return PublicKey(scheme_from_name(str(entry.get("scheme", "ed25519"))), bytes.fromhex(str(entry["key"])))
    except (KeyError, ValueError) as exc:
        raise ValueError(f"{field}: expected {{'scheme', 'key': hex}} ({exc})") from None


def parse_did_entry(entry: dict[str, Any], field: str) -> tuple:
    """(controller, salt, keys, services) of a genesis DID entry; raise ValueError naming the field."""
    spec = entry.get("controller") or {}
    keys = [_public_key(k, f"{field}.controller.keys[{i}]") for i, k in enumerate(spec.get("keys", []))]
    try:
        controller = make_signer(int(spec.get("threshold", 1)), keys)
    except ValueError as exc:
        raise ValueError(f"{field}.controller: {exc}") from None
    methods = sorted((VerificationKey(str(k.get("fragment", "")), _public_key(k, f"{field}.keys[{i}]"),
                                      sorted(k.get("purposes", [])))
                      for i, k in enumerate(entry.get("keys", []))), key=lambda vk: vk.fragment)
    services = sorted((Service(str(s.get("fragment", "")), str(s.get("type", "")), str(s.get("endpoint", "")))
                       for s in entry.get("services", [])), key=lambda s: s.fragment)
    return controller, bytes.fromhex(str(entry.get("salt", ""))), methods, services


def init_genesis(state: Overlay, section: Any, ctx: Context) -> None:
    """Create the genesis DIDs and accreditations."""
    for index, entry in enumerate((section or {}).get("dids", [])):
        field = f"identity.dids[{index}]"
        controller, salt, methods, services = parse_did_entry(entry, field)
        try:
            record = create_did_record(ctx, KIND_ORGANISATION, controller, salt, methods, services)
        except TxError as exc:
            raise ValueError(f"{field}: {exc.message}") from None
        for credential_type in entry.get("accreditations", []):
            if not is_credential_type(str(credential_type)):
                raise ValueError(f"{field}.accreditations: invalid credential type {credential_type!r}")
            state.set(accreditation_key(record.did, credential_type),
                      encode(Accreditation(record.did, credential_type, ctx.height)))
