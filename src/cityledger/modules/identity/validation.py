"""Stateless checks of identity message fields; each returns None or a message naming the bad field.

Shared by the handlers (which raise TxError) and genesis (which raises ValueError), so both refuse
exactly the same documents.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ...core.encoding import parse_json
from ...core.keys import PUBLIC_KEY_LEN, Signer, validate_signer
from .did import CONTROLLER_FRAGMENT, b58decode
from .messages import (
    MAX_ATTRIBUTES,
    MAX_CREDENTIAL_TYPE_LEN,
    MAX_ENDPOINT_LEN,
    MAX_FRAGMENT_LEN,
    MAX_KEYS,
    MAX_NAME_LEN,
    MAX_SERVICE_TYPE_LEN,
    MAX_SERVICES,
    PURPOSES,
    Service,
    VerificationKey,
)

# Every pattern is applied with fullmatch: with match, "$" also matches before a trailing newline.
_FRAGMENT_RE = re.compile(r"[a-z][a-z0-9-]{0,%d}" % (MAX_FRAGMENT_LEN - 1))
_SERVICE_TYPE_RE = re.compile(r"[A-Za-z][A-Za-z0-9]{0,%d}" % (MAX_SERVICE_TYPE_LEN - 1))
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,%d}" % (MAX_NAME_LEN - 1))
_ATTR_RE = re.compile(r"[a-z][a-z0-9_]{0,%d}" % (MAX_NAME_LEN - 1))
_TYPE_RE = re.compile(r"[a-z][a-z0-9-]{0,%d}" % (MAX_CREDENTIAL_TYPE_LEN - 1))
_ENDPOINT_RE = re.compile(r"https?://[\x21-\x7e]+")


def check_controller(controller: Signer, field: str = "controller") -> str | None:
    """The controller is a well-formed k-of-n signer."""
    problem = validate_signer(controller)
    return None if problem is None else f"{field}.{problem.split('.', 1)[1]}"


def check_keys(keys: list[VerificationKey], field: str = "keys") -> str | None:
    """Keys: at most MAX_KEYS, sorted by distinct fragment, each with known sorted purposes."""
    if len(keys) > MAX_KEYS:
        return f"{field}: expected at most {MAX_KEYS} keys, got {len(keys)}"
    fragments = [vk.fragment for vk in keys]
    if fragments != sorted(set(fragments)):
        return f"{field}: expected distinct fragments in sorted order, got {fragments}"
    for index, vk in enumerate(keys):
        where = f"{field}[{index}]"
        if not _FRAGMENT_RE.fullmatch(vk.fragment) or vk.fragment.startswith(CONTROLLER_FRAGMENT):
            return f"{where}.fragment: expected [a-z][a-z0-9-]{{0,31}} not starting with " \
                   f"{CONTROLLER_FRAGMENT!r}, got {vk.fragment!r}"
        if PUBLIC_KEY_LEN.get(vk.key.scheme) != len(vk.key.key):
            return f"{where}.key: expected an Ed25519 (32 bytes) or P-256 (33 bytes) key"
        if not vk.purposes or vk.purposes != sorted(set(vk.purposes)) or not set(vk.purposes) <= set(PURPOSES):
            return f"{where}.purposes: expected a sorted non-empty subset of {list(PURPOSES)}, got {vk.purposes}"
    return None


def check_services(services: list[Service], field: str = "services") -> str | None:
    """Services: at most MAX_SERVICES, sorted by distinct fragment, http(s) endpoints."""
    if len(services) > MAX_SERVICES:
        return f"{field}: expected at most {MAX_SERVICES} services, got {len(services)}"
    fragments = [s.fragment for s in services]
    if fragments != sorted(set(fragments)):
        return f"{field}: expected distinct fragments in sorted order, got {fragments}"
    for index, service in enumerate(services):
        where = f"{field}[{index}]"
        if not _FRAGMENT_RE.fullmatch(service.fragment):
            return f"{where}.fragment: expected [a-z][a-z0-9-]{{0,31}}, got {service.fragment!r}"
        if not _SERVICE_TYPE_RE.fullmatch(service.type):
            return f"{where}.type: expected an alphanumeric type name, got {service.type!r}"
        if not check_endpoint(service.endpoint):
            return f"{where}.endpoint: expected an http(s) URL of at most {MAX_ENDPOINT_LEN} characters"
    return None


def check_endpoint(url: str) -> bool:
    """True if url is a printable http(s) URL within the length limit (no spaces or newlines)."""
    return isinstance(url, str) and len(url) <= MAX_ENDPOINT_LEN and bool(_ENDPOINT_RE.fullmatch(url))


def is_name(text: str) -> bool:
    """True for a schema name, version or tag: [A-Za-z0-9][A-Za-z0-9._-]{0,63}."""
    return isinstance(text, str) and bool(_NAME_RE.fullmatch(text))


def is_credential_type(text: str) -> bool:
    """True for a credential type: lower-case words joined by '-', e.g. 'resident-id'."""
    return isinstance(text, str) and bool(_TYPE_RE.fullmatch(text))


def check_attr_names(names: list[str]) -> str | None:
    """Schema attributes: 1 to MAX_ATTRIBUTES distinct lower-case names in sorted order."""
    if not 1 <= len(names) <= MAX_ATTRIBUTES:
        return f"attr_names: expected 1 to {MAX_ATTRIBUTES} attributes, got {len(names)}"
    if names != sorted(set(names)):
        return f"attr_names: expected distinct names in sorted order, got {names}"
    bad = [name for name in names if not _ATTR_RE.fullmatch(name)]
    return f"attr_names: expected [a-z][a-z0-9_]* names, got {bad}" if bad else None


def canonical_json(value: Any) -> bytes:
    """The one JSON encoding cityledger accepts: sorted keys, no spaces, UTF-8, no floats."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def parse_canonical_json(raw: bytes, field: str) -> tuple[Any, str | None]:
    """(value, None) if raw is canonical JSON (nesting bounded by MAX_JSON_DEPTH), else (None, a
    message naming the field)."""
    try:
        value = parse_json(raw, field)
    except ValueError as exc:
        return None, str(exc)
    if canonical_json(value) != raw:
        return None, f"{field}: not in canonical form (sorted keys, no spaces, UTF-8)"
    return value, None


def is_tails_hash(text: str) -> bool:
    """True if text is the base58 form of a 32-byte SHA-256 digest."""
    try:
        return isinstance(text, str) and 40 <= len(text) <= 46 and len(b58decode(text)) == 32
    except ValueError:
        return False
