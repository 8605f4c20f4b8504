"""State-of-health reports signed by each battery's BMS: verified, stored encrypted, committed one root per batch.

A report is a JSON object (the Annex VII / Art. 14 values of `performance.dynamic` under
"dynamic", and a random "salt" of at least MIN_SALT_HEX hex digits, so its hash reveals no value).
The BMS signs batteries' report payload, compute_report_payload(chain id, passport, sequence,
SHA-256 of the report's canonical JSON), exactly what batteries/1.0/report carries on chain: the
same signed report may go on chain alone (ReportHealth, one tx each) or through this batch path.

The batch path: the passport service verifies every report's BMS signature against the battery
device's current key on chain and its sequence (the next after the chain's and the service's
last), stores each encrypted under the passport's legitimate-tier key (the values are Annex XIII
point 4 data), and commits one RFC 9162 Merkle root over (passport, sequence, report hash) leaves
with batteries/1.0/anchor_report_root: one transaction per batch. No value reaches the chain.

End of first life: a report whose state of certified energy (SOCE_PATH) is at or below
SOH_ALERT_PERCENT raises an alert in the service, readable only by the passport's operator and
the battery's owner (GET /passports/{id}/alerts, signed as the log read); the chain holds no flag.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import re
from dataclasses import dataclass
from typing import Any, Callable

from ...core.hashing import sha256
from ...core.keys import PublicKey, verify_signature
from ...modules.batteries import compute_report_payload
from ...modules.devices import compute_message_bytes
from ..telemetry.anchor import compute_records_root
from .tiers import canonical_json
from .types import PassportError, SchemaIssue
from .validate import validate_document

MAX_REPORT_BATCH = 4_096  # reports one batch may carry
MAX_REPORT_BYTES = 16 * 1024  # one report's canonical JSON
MIN_SALT_HEX = 32  # 128 random bits, so a report's hash cannot be matched against guessed values
SOH_ALERT_PERCENT = 80  # Annex VII: a state of certified energy at or below this nears end of first life
SOCE_PATH = ("dynamic", "energy", "soce", "value")  # where a report holds its state of certified energy, in %
LEAF_DOMAIN = b"cityledger/soh-report/1\x00"
MAX_VERIFY_WORKERS = 64  # [passports] verify_workers
MIN_POOL_CHECKS = 64  # fewer signatures are checked in the calling thread: a round trip costs more
DYNAMIC_PATH = "$.performance.dynamic"  # where a report's "dynamic" sits in a BatteryPass document
_SALT_RE = re.compile(r"[0-9a-f]{%d,128}" % MIN_SALT_HEX)


@dataclass(frozen=True)
class SignedReport:
    """One report as the BMS signed it."""

    passport_id: str
    sequence: int
    report: dict[str, Any]
    signature: bytes


@dataclass(frozen=True)
class VerifiedReport:
    """A report whose signature and sequence were checked: what the store keeps."""

    passport_id: str
    sequence: int
    report_hash: bytes
    body: bytes  # the canonical JSON, to be encrypted
    alert: bool  # SOCE at or below SOH_ALERT_PERCENT


@dataclass(frozen=True)
class PendingBatch:
    """A stored batch waiting for (or holding) its root on chain."""

    seq: int
    root: bytes
    size: int


def compute_report_hash(report: dict[str, Any]) -> bytes:
    """SHA-256 of a report's canonical JSON: what the BMS signs (through the report payload)."""
    return sha256(canonical_json(report))


def compute_report_leaf(passport_id: str, sequence: int, report_hash: bytes) -> bytes:
    """The Merkle leaf id of one report."""
    return sha256(LEAF_DOMAIN + passport_id.encode() + b"\x00" + sequence.to_bytes(8, "big") + report_hash)


def compute_batch_root(reports: list[VerifiedReport]) -> bytes:
    """The root a batch commits on chain."""
    return compute_records_root([compute_report_leaf(r.passport_id, r.sequence, r.report_hash) for r in reports])


def is_end_of_first_life(report: dict[str, Any]) -> bool:
    """True if the report's state of certified energy is a number at or below SOH_ALERT_PERCENT."""
    value: Any = report
    for name in SOCE_PATH:
        value = value.get(name) if isinstance(value, dict) else None
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value <= SOH_ALERT_PERCENT


def check_dynamic(dynamic: Any) -> list[SchemaIssue]:
    """The BatteryPass schema issues of a report's `dynamic` (a `performance.dynamic`), at paths under $.dynamic."""
    if not isinstance(dynamic, dict):
        return [SchemaIssue("$.dynamic", "expected an object")]
    # Validated in place in a document; the required fields outside performance.dynamic are excused.
    found = validate_document({"performance": {"dynamic": dynamic}},
                              excused=lambda template: not template.startswith(DYNAMIC_PATH))
    return [SchemaIssue("$.dynamic" + issue.path[len(DYNAMIC_PATH):], issue.message) for issue in found
            if issue.path.startswith(DYNAMIC_PATH)]


def overlay_dynamic(document: dict[str, Any], report: dict[str, Any] | None) -> dict[str, Any]:
    """`document` with `performance.dynamic` from `report`, if there is one whose `dynamic` fits the schema.

    The batch path stores any salted JSON object the BMS signed; only a schema-valid `dynamic` stands in
    for the document's own, so an exported document still validates.
    """
    if report is None or not isinstance(document.get("performance"), dict) or check_dynamic(report.get("dynamic")):
        return document
    return {**document, "performance": {**document["performance"], "dynamic": report["dynamic"]}}


# (passport id) -> (battery device DID, the chain's report count) or None if no passport may report.
PassportLookup = Callable[[str], "tuple[str, int] | None"]
# (device DID) -> its current keys, or why it may not sign (not registered, not active).
DeviceKeys = Callable[[str], "list[PublicKey] | str"]


def verify_reports(chain_id: str, reports: list[SignedReport], lookup: PassportLookup, keys_of: DeviceKeys,
                   last_stored: Callable[[str], int], verify_many: Callable[[list], list[bool]] | None = None
                   ) -> list[VerifiedReport]:
    """Every report checked (shape, sequence, BMS signature); raise PassportError naming `reports[i].field`."""
    if not 1 <= len(reports) <= MAX_REPORT_BATCH:
        raise PassportError("reports", f"expected 1 to {MAX_REPORT_BATCH} reports, got {len(reports)}")
    next_seq: dict[str, int] = {}
    batteries: dict[str, str] = {}
    out, checks = [], []
    for index, signed in enumerate(reports):
        where = f"reports[{index}]"
        if signed.passport_id not in next_seq:
            found = lookup(signed.passport_id)
            if found is None:
                raise PassportError(f"{where}.passport", f"{signed.passport_id} is no passport in service on chain")
            batteries[signed.passport_id] = found[0]
            next_seq[signed.passport_id] = max(found[1], last_stored(signed.passport_id)) + 1
        if signed.sequence != next_seq[signed.passport_id]:
            raise PassportError(f"{where}.sequence", f"expected {next_seq[signed.passport_id]} for "
                                                     f"{signed.passport_id}, got {signed.sequence}")
        body = _check_body(where, signed.report)
        report_hash = sha256(body)
        battery = batteries[signed.passport_id]
        keys = keys_of(battery)
        if isinstance(keys, str):
            raise PassportError(f"{where}.signature", f"not the battery's BMS key: {keys}")
        payload = compute_report_payload(chain_id, signed.passport_id, signed.sequence, report_hash)
        checks.append(([(key.scheme, key.key) for key in keys], compute_message_bytes(battery, payload),
                       signed.signature))
        out.append(VerifiedReport(signed.passport_id, signed.sequence, report_hash, body,
                                  is_end_of_first_life(signed.report)))
        next_seq[signed.passport_id] += 1
    verdicts = (verify_many or verify_signatures)(checks)
    for index, ok in enumerate(verdicts):
        if not ok:
            raise PassportError(f"reports[{index}].signature", f"not made by a current key of "
                                                               f"{batteries[out[index].passport_id]}")
    return out


def verify_signatures(checks: list[tuple[list[tuple[int, bytes]], bytes, bytes]]) -> list[bool]:
    """For each (keys, message, signature): True if one of the keys signed the message."""
    return [any(verify_signature(PublicKey(scheme, key), message, signature) for scheme, key in keys)
            for keys, message, signature in checks]


class SignaturePool:
    """BMS signatures verified on worker processes, one per core, as the solo engine verifies txs:
    each worker has an interpreter of its own, so verification runs beside the app's thread."""

    def __init__(self, workers: int = 1) -> None:
        self.workers = workers
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    def start(self) -> None:
        """Start the workers (spawned: the node has threads) and wait until they answer."""
        if self.workers > 1:
            self._pool = concurrent.futures.ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn"))
            list(self._pool.map(verify_signatures, [[]] * self.workers))

    def verify(self, checks: list) -> list[bool]:
        """verify_signatures over the workers and this thread (only this one with one core or few checks)."""
        if self._pool is None or len(checks) < MIN_POOL_CHECKS:
            return verify_signatures(checks)
        # This thread verifies a share of its own instead of waiting idle for the workers' answers.
        share = len(checks) // (self.workers + 1)
        rest = checks[share:]
        size = -(-len(rest) // (2 * self.workers))
        futures = [self._pool.submit(verify_signatures, rest[start:start + size])
                   for start in range(0, len(rest), size)]
        mine = verify_signatures(checks[:share])
        return mine + [ok for future in futures for ok in future.result()]

    def stop(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None


def _check_body(where: str, report: Any) -> bytes:
    """A report's canonical JSON, once it is an object with a long enough salt; raise PassportError."""
    if not isinstance(report, dict):
        raise PassportError(f"{where}.report", "expected a JSON object")
    if not isinstance(report.get("salt"), str) or not _SALT_RE.fullmatch(report["salt"]):
        raise PassportError(f"{where}.report.salt", f"expected {MIN_SALT_HEX} to 128 lower-case hex digits")
    try:
        body = canonical_json(report)
    except (TypeError, ValueError) as error:
        raise PassportError(f"{where}.report", f"not JSON: {error}") from None
    if len(body) > MAX_REPORT_BYTES:
        raise PassportError(f"{where}.report", f"{len(body)} bytes of JSON, at most {MAX_REPORT_BYTES}")
    return body
