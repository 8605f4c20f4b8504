"""The verifier service: ask for facts, check the answer against the ledger at the pinned height.

A request pins the ledger height it was made at in `non_revoked.to`: the holder proves
non-revocation against the status list in force at that height, and the verifier resolves every
object (schema, credential definition, registry, status list, issuer accreditation) at that same
height. A revocation anchored before the request therefore makes the presentation fail.

Requests are stateless: the verifier seals each one with an HMAC-SHA256 under its own secret key,
covering the whole request, the height it pins and its expiry (a height and a wall-clock time), in
the request's `verifier` member. Making a request stores nothing, so no number of requests can
crowd out another; `verify` refuses a request whose seal does not match (forged, altered, or made
by another verifier) or that has expired. Only a request that verified is remembered, until its
expiry, so that each request verifies once.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import json
import os
import re
import secrets
import threading
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import anoncreds

from ...modules.identity.presentations import verify_presentation
from .ledger import LedgerReader
from .types import RESIDENT_ID, compute_years_before

REQUEST_TYPE = "identity/1.0/presentation-request"
MAX_REQUEST_AGE_BLOCKS = 10_000
REQUEST_TTL_S = 3_600
MAX_USED_REQUESTS = 100_000
MAX_REVEAL = 16
MAX_PREDICATES = 16
PREDICATE_TYPES = (">=", ">", "<=", "<")
# AnonCreds proves predicates over 32-bit signed integers only.
MIN_P_VALUE, MAX_P_VALUE = -(2**31), 2**31 - 1
KEY_BYTES = 32
SEAL_FIELD = "verifier"
_MAC_DOMAIN = b"cityledger/verifier-request/1\x00"
_TYPE_RE = re.compile(r"[a-z][a-z0-9-]{0,63}")
_ATTR_RE = re.compile(r"[a-z][a-z0-9_]{0,63}")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_HEX_MAC_RE = re.compile(r"[0-9a-f]{64}")


class VerifierKeyError(ValueError):
    """The verifier's key file cannot be used."""


def load_verifier_key(path: Path | str) -> bytes:
    """The node-local verifier key in `path`, created (mode 0600) on first use."""
    path = Path(path)
    try:
        # O_EXCL: never overwrite a key another process has just written.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        text = path.read_text().strip()
        if not _HEX_MAC_RE.fullmatch(text):
            raise VerifierKeyError(f"{path}: expected {KEY_BYTES} bytes as lower-case hex") from None
        return bytes.fromhex(text)
    key = secrets.token_bytes(KEY_BYTES)
    with open(descriptor, "w") as handle:
        handle.write(key.hex() + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return key


def compute_request_mac(key: bytes, request: Mapping[str, Any]) -> str:
    """The seal of a request: HMAC-SHA256 over its canonical JSON without the seal's own `mac`."""
    body = dict(request)
    body[SEAL_FIELD] = {k: v for k, v in dict(request.get(SEAL_FIELD) or {}).items() if k != "mac"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    return hmac.new(key, _MAC_DOMAIN + canonical, hashlib.sha256).hexdigest()


_USED = "nonce: this request was already verified (each request verifies once)"


def _refusal(reason: str, height: int | None = None) -> dict[str, Any]:
    return {"verified": False, "reason": reason, "revealed": {}, "height": height}


class Verifier:
    """Builds sealed presentation requests and verifies presentations; JSON in, JSON out."""

    def __init__(self, ledger: LedgerReader, max_age_blocks: int = MAX_REQUEST_AGE_BLOCKS, *,
                 key: bytes | None = None, ttl_s: int = REQUEST_TTL_S,
                 clock: Callable[[], float] = time.time) -> None:
        self.ledger = ledger
        self.max_age_blocks = max_age_blocks
        self.ttl_s = ttl_s
        self._key = key if key is not None else secrets.token_bytes(KEY_BYTES)
        self._clock = clock
        self._used: dict[str, int] = {}  # nonce of a verified request -> its expiry (unix s)
        self._expiries: list[tuple[int, str]] = []  # heap of (expiry, nonce) over _used
        self._lock = threading.Lock()

    def request(self, name: str, credential_type: str, reveal: Sequence[str] = (),
                predicates: Sequence[tuple[str, str, int]] = (), non_revoked: bool = True) -> dict[str, Any]:
        """A sealed presentation request for attributes of one credential type, pinned to the current height."""
        _check_request(name, credential_type, reveal, predicates)
        restrictions = [{"schema_name": credential_type}]
        height = self.ledger.height()
        request: dict[str, Any] = {
            "name": name, "version": "1.0", "nonce": str(secrets.randbits(80)),
            "requested_attributes": {f"attr_{attr}": {"name": attr, "restrictions": restrictions} for attr in reveal},
            "requested_predicates": {f"pred_{attr}": {"name": attr, "p_type": p_type, "p_value": value,
                                                      "restrictions": restrictions}
                                     for attr, p_type, value in predicates},
        }
        if non_revoked:
            request["non_revoked"] = {"to": height}
        request[SEAL_FIELD] = {"height": height, "expires_height": height + self.max_age_blocks,
                               "expires_unix_s": int(self._clock()) + self.ttl_s}
        request[SEAL_FIELD]["mac"] = compute_request_mac(self._key, request)
        return request

    def resident_request(self, today: int, reveal: Sequence[str] = ("district",), min_age: int = 18,
                         min_residence_years: int = 1) -> dict[str, Any]:
        """The city's usual check: adult, resident for a while, revealing only `reveal`."""
        predicates = [("birth_date", "<=", compute_years_before(today, min_age)),
                      ("resident_since", "<=", compute_years_before(today, min_residence_years))]
        return self.request("resident-check", RESIDENT_ID, reveal, predicates)

    def verify(self, request: Mapping[str, Any], presentation: str) -> dict[str, Any]:
        """{'verified', 'reason', 'revealed', 'height'}: a sealed, unexpired request verifies once."""
        sealed = self._open_seal(request)
        if isinstance(sealed, str):
            return _refusal(sealed)
        height, expires_unix_s = sealed
        expired = self._expired(request, height, expires_unix_s)
        if expired:
            return _refusal(expired, height)
        nonce = str(request.get("nonce"))
        with self._lock:
            if nonce in self._used:
                return _refusal(_USED, height)
        try:
            check = verify_presentation(self.ledger.state_at(height), dict(request), presentation)
        except LookupError as exc:  # the node no longer keeps the state of that height
            return _refusal(f"ledger: {exc}", height)
        if not check.verified:
            return _refusal(check.reason, height)
        # Remembered only once verified, so failed attempts cost the verifier no memory.
        claimed = self._claim(nonce, expires_unix_s)
        if claimed:
            return _refusal(claimed, height)
        return {"verified": True, "reason": check.reason, "revealed": check.revealed, "height": height}

    def _open_seal(self, request: Mapping[str, Any]) -> tuple[int, int] | str:
        """(height, expiry in unix s) of a request sealed by this verifier, or the reason it is not."""
        seal = request.get(SEAL_FIELD)
        if not isinstance(seal, Mapping) or not isinstance(seal.get("mac"), str):
            return f"{SEAL_FIELD}: missing; not a request made by this verifier"
        fields = [seal.get(name) for name in ("height", "expires_height", "expires_unix_s")]
        if not all(type(value) is int for value in fields) or not _HEX_MAC_RE.fullmatch(seal["mac"]):
            return f"{SEAL_FIELD}: malformed seal; not a request made by this verifier"
        try:
            expected = compute_request_mac(self._key, request)
        except (TypeError, ValueError, RecursionError):
            return f"{SEAL_FIELD}: the request is not plain JSON"
        if not hmac.compare_digest(expected, seal["mac"]):
            return f"{SEAL_FIELD}: the seal does not match; a forged or altered request, or another verifier's"
        return int(seal["height"]), int(seal["expires_unix_s"])

    def _expired(self, request: Mapping[str, Any], height: int, expires_unix_s: int) -> str:
        expires_height = int(request[SEAL_FIELD]["expires_height"])
        now_height, now_s = self.ledger.height(), int(self._clock())
        if now_height > expires_height:
            return f"request: expired at height {expires_height}, older than {expires_height - height} blocks"
        if now_s > expires_unix_s:
            return f"request: expired at unix time {expires_unix_s}, older than {self.ttl_s} s"
        return ""

    def _claim(self, nonce: str, expires_unix_s: int) -> str:
        """Mark a verified request used until its expiry; the reason if it cannot be."""
        with self._lock:
            now_s = int(self._clock())
            while self._expiries and self._expiries[0][0] < now_s:
                _, old = heapq.heappop(self._expiries)
                del self._used[old]
            if nonce in self._used:  # a concurrent verification of the same request won
                return _USED
            if len(self._used) >= MAX_USED_REQUESTS:
                return f"verifier: {MAX_USED_REQUESTS} unexpired requests verified; ask again later"
            self._used[nonce] = expires_unix_s
            heapq.heappush(self._expiries, (expires_unix_s, nonce))
            return ""


def _check_request(name: str, credential_type: str, reveal: Sequence[str],
                   predicates: Sequence[tuple[str, str, int]]) -> None:
    """Raise ValueError naming the first bad part of a request's specification."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise ValueError(f"name: expected letters, digits, '.', '_' or '-' (1 to 64), got {str(name)[:80]!r}")
    if not isinstance(credential_type, str) or not _TYPE_RE.fullmatch(credential_type):
        raise ValueError(f"credential_type: expected a credential type like 'resident-id', "
                         f"got {str(credential_type)[:80]!r}")
    if len(reveal) > MAX_REVEAL or len(predicates) > MAX_PREDICATES or not (reveal or predicates):
        raise ValueError(f"reveal: expected up to {MAX_REVEAL} attributes and up to {MAX_PREDICATES} "
                         "predicates, at least one of either")
    for index, attr in enumerate(reveal):
        if not isinstance(attr, str) or not _ATTR_RE.fullmatch(attr):
            raise ValueError(f"reveal[{index}]: expected an attribute name like 'district', got {str(attr)[:80]!r}")
        if attr in reveal[:index]:
            raise ValueError(f"reveal[{index}]: {attr!r} is listed twice")
    seen: list[str] = []
    for index, (attr, p_type, value) in enumerate(predicates):
        if not isinstance(attr, str) or not _ATTR_RE.fullmatch(attr):
            raise ValueError(f"predicates[{index}].name: expected an attribute name, got {str(attr)[:80]!r}")
        if attr in seen:
            raise ValueError(f"predicates[{index}].name: {attr!r} has a predicate already")
        if p_type not in PREDICATE_TYPES:
            raise ValueError(f"predicates[{index}].p_type: must be one of {PREDICATE_TYPES}, got {str(p_type)[:8]!r}")
        if type(value) is not int or not MIN_P_VALUE <= value <= MAX_P_VALUE:
            raise ValueError(f"predicates[{index}].p_value: expected an integer from {MIN_P_VALUE} to {MAX_P_VALUE}")
        seen.append(attr)


def raw_verify(request: Mapping[str, Any], presentation: str, schemas: Mapping[str, Any], cred_defs: Mapping[str, Any],
               rev_reg_defs: Mapping[str, Any], status_lists: Sequence[Any]) -> bool:
    """The anoncreds library's own verification with objects the caller already holds (benchmarks)."""
    return anoncreds.Presentation.load(presentation).verify(json.dumps(dict(request)), schemas, cred_defs,
                                                            rev_reg_defs or None, list(status_lists) or None)
