"""`cityledger bench batteries`: SoH reports through the API, passport export, restricted access vs raw AnonCreds.

Run: cityledger bench batteries [--batteries 500] [--reports 12] [--batch 2000] [--iterations 15] [--json]

A solo node runs in this process with its REST API under uvicorn (a thread) and the passport
service's key accredited as battery-passport-service. Set-up (not timed): `--batteries` battery
devices with passports in service, and `--reports` reports for each, signed by each battery's BMS
key (what the BMS does, not the ledger) and encoded in batches of `--batch`.

- soh_reports_per_s: the batches POSTed to /passports/reports one after the other; each answers
  once every BMS signature and sequence was verified, the reports stored encrypted and the batch's
  root committed on chain (anchor_report_root), with the signatures verified in the request's
  thread (the node's default). Every other batch is verified on worker processes, one per core,
  instead ([passports] verify_workers): soh_reports_per_s_workers, same run. Reports over the
  time of their POSTs. bms_verify_per_s: one core's raw rate of the
  BMS signature scheme, same run. onchain_txs_per_report: report-root txs on chain over the reports.
- export_ms: PassportStore.export of a full document at the authority tier (three tiers decrypted,
  merged, validated against the BatteryPass schema, the read logged), median. validate_ms and
  reference_validate_ms: the exported document validated by the export's path (the compiled schema
  for a valid document) and by the reference validator alone (the path before it), same run.
- restricted_reads_per_s_8_threads: restricted tier reads (decrypted, logged) by 8 threads at once,
  the access log committing what they queued together (group commit); _fsync_each: the same with
  one commit per read (the store's max_log_group=1), same run, alternating; group_commit_ratio: the
  first over the second. Each on a store of its own beside the node's, medians of 3 rounds.
- restricted_access_ms: the node verifier's verify of a presentation of battery-legitimate-interest
  (resolved from the ledger at the request's height, revocation and accreditation checked) plus
  the legitimate tier decrypted; raw_verify_ms: the anoncreds library's own verify of the same
  presentation with every object already in memory, same run, alternating order. Medians.

The last line of output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import msgspec
import uvicorn

DEFAULT_DOCUMENT = Path(__file__).resolve().parents[3] / "tests" / "data" / "battery_pass_example.json"
SERVER_START_TIMEOUT_S = 30  # how long the bench waits for its API server to listen
MESSAGES_PER_TX = 60  # set-up messages per transaction (the ledger allows 64)
CONCURRENT_READERS = 8  # threads reading a restricted tier at once (group_commit_ratio)
SCHEMES = {"ed25519": 1, "p256": 2}  # the BMS key's signature scheme (core/keys)


def _home(scratch: Path):
    """A node home whose genesis accredits the bench's organisation, office and passport service."""
    from ..core.keys import PrivateKey
    from ..modules.batteries import ROLE_MANUFACTURER, ROLE_PASSPORT_SERVICE, ROLE_VEHICLE_MAKER
    from ..node.home import PassportsConfig, init_home, load_config, load_key
    from ..node.issuers import compute_manufacturer_entry
    from ..offchain.identity import DEVICE_MANUFACTURER
    from ..offchain.identity.types import BATTERY_LEGITIMATE_INTEREST

    home = scratch / "home"
    init_home(home, chain_id="bench-batteries", members=1, issuers=False)
    org, office = PrivateKey(1, b"\x81" * 32), PrivateKey(1, b"\x82" * 32)
    path = home / "genesis.json"
    genesis = json.loads(path.read_text())
    dids = genesis["app_state"].setdefault("identity", {}).setdefault("dids", [])
    for key, roles in ((org, [DEVICE_MANUFACTURER, ROLE_MANUFACTURER, ROLE_VEHICLE_MAKER]),
                       (office, [BATTERY_LEGITIMATE_INTEREST]),
                       (load_key(home / "node_key.json"), [ROLE_PASSPORT_SERVICE])):
        entry = compute_manufacturer_entry(key)
        entry["accreditations"] = roles
        dids.append(entry)
    path.write_text(json.dumps(genesis))
    config = load_config(home)
    config.solo.block_interval_ms = 20
    # The report path only; verifier workers on every core, every other batch measured without them.
    config.passports = PassportsConfig(anchor=True, anchor_interval_s=3600, verify_workers=os.cpu_count() or 1)
    return config, org, office


class _Server:
    """The node's API under uvicorn in a thread."""

    def __init__(self, node) -> None:
        import socket

        from ..api import create_app
        from ..api.server import server_config

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(server_config(create_app(node), "127.0.0.1", self.port, "warning"))
        self.thread = threading.Thread(target=self.server.run, name="bench-uvicorn", daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the bench's API server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def _batteries(ledger, chain_id: str, org, count: int, scheme: int) -> list[tuple[Any, str, str]]:
    """`count` batteries in service: (BMS key, battery DID, passport id) each."""
    import uuid

    from ..core.keys import PrivateKey
    from ..modules.batteries import Install, PlaceOnMarket, RegisterPassport
    from ..modules.devices import compute_device_did
    from ..modules.identity import compute_did
    from ..offchain.identity.devices import build_registration

    did = compute_did(org.signer(), b"")
    out, messages = [], []
    for index in range(count):
        bms = PrivateKey(scheme, index.to_bytes(4, "big") + b"\x42" * 28)
        car = PrivateKey(2, index.to_bytes(4, "big") + b"\x43" * 28)
        battery, vehicle = compute_device_did(bms.public_key), compute_device_did(car.public_key)
        passport = str(uuid.UUID(bytes=index.to_bytes(16, "big"), version=4))
        hashes = [bytes([tier]) * 32 for tier in range(3)]
        messages += [build_registration(chain_id, "battery", "Pack-1", bms, did, org),
                     build_registration(chain_id, "vehicle", "Car-1", car, did, org),
                     RegisterPassport(did, passport, f"BENCH-{index:06d}", battery, *hashes),
                     PlaceOnMarket(did, passport), Install(did, passport, vehicle)]
        out.append((bms, battery, passport))
    for start in range(0, len(messages), MESSAGES_PER_TX):
        ledger.send([org], messages[start:start + MESSAGES_PER_TX]).raise_for_error()
    return out


def _report(index: int, sequence: int) -> dict[str, Any]:
    """An Annex VII / Art. 14 report: the values of performance.dynamic, and a salt."""
    fade = round(0.4 * sequence + index % 7 * 0.1, 2)
    return {"salt": os.urandom(16).hex(), "dynamic": {
        "energy": {"soce": {"value": round(100 - fade, 2)}, "throughput": {"value": 120.5 * sequence}},
        "capacity": {"fade": {"value": fade}, "capacity": {"value": round(64.0 * (1 - fade / 100), 3)}},
        "power": {"fade": {"value": round(fade * 0.8, 2)}}, "roundTripEfficiency": {"fade": {"value": 0.3}},
        "resistance": {"increase": {"pack": {"value": round(fade * 1.5, 2)}}},
        "fullCycles": {"value": 1.1 * sequence}, "negativeEvents": []}}


def _report_bodies(chain_id: str, batteries: list, reports: int, batch: int) -> list[bytes]:
    """Every report signed by its BMS, encoded as POST bodies of `batch` reports, sequences in order."""
    from ..sdk.passports import report_item
    from ..wire.batteries import ReportBatchBody

    items = [report_item(chain_id, bms, battery, passport, sequence, _report(index, sequence))
             for sequence in range(1, reports + 1) for index, (bms, battery, passport) in enumerate(batteries)]
    return [msgspec.json.encode(ReportBatchBody(reports=items[start:start + batch]))
            for start in range(0, len(items), batch)]


def _soh(node, url: str, bodies: list[bytes], batch: int) -> dict[str, Any]:
    """POST every batch, alternately with the node's verifier workers and with verification in the request's
    thread (the same-run baseline); reports per second of each, on-chain transactions per report."""
    from ..modules.batteries import get_report_root
    from ..offchain.passport.reports import SignaturePool

    workers, in_thread = node.passport_anchoring.pool, SignaturePool(workers=1)
    elapsed, counts = {"workers": 0.0, "thread": 0.0}, {"workers": 0, "thread": 0}
    with httpx.Client(base_url=url, timeout=300) as client:
        for index, body in enumerate(bodies):
            mode = "workers" if index % 2 == 0 else "thread"
            node.passport_anchoring.pool = workers if mode == "workers" else in_thread
            started = time.perf_counter()
            answer = client.post("/passports/reports", content=body, headers={"content-type": "application/json"})
            elapsed[mode] += time.perf_counter() - started
            if answer.status_code != 200:
                raise RuntimeError(f"report batch refused: {answer.text[:400]}")
            counts[mode] += answer.json()["accepted"]
    node.passport_anchoring.pool = workers
    total = sum(counts.values())
    txs = get_report_root(node.store, node.passport_service).seq
    result = {"soh_reports_per_s_workers": counts["workers"] / elapsed["workers"], "soh_reports": total,
              "soh_batches": len(bodies), "onchain_txs_per_report": txs / total}
    if counts["thread"]:  # the node's default: verified in the request's thread
        result["soh_reports_per_s"] = counts["thread"] / elapsed["thread"]
        result["soh_workers_to_thread_ratio"] = result["soh_reports_per_s_workers"] / result["soh_reports_per_s"]
    else:
        result["soh_reports_per_s"] = result["soh_reports_per_s_workers"]
    return result


def _bms_verify_rate(scheme: int, seconds: float = 1.0) -> dict[str, Any]:
    """Raw BMS signature verifications per second on one core (core/keys.verify_signature), same run."""
    from ..core.keys import PrivateKey, verify_signature

    key = PrivateKey(scheme, b"\x44" * 32)
    message = b"cityledger/bench" * 8
    signature, public = key.sign(message), key.public_key
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(100):
            verify_signature(public, message, signature)
        count += 100
    return {"bms_verify_per_s": count / (time.perf_counter() - started)}


def _timed(fn, *args, **kwargs) -> tuple[Any, float]:
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, (time.perf_counter() - started) * 1000


def _export(store, document: dict[str, Any], iterations: int) -> dict[str, Any]:
    """Median time of a full document's export at the authority tier, and of its validation alone by the
    path the export uses and by the reference validator (the path before the compiled one), same run."""
    from ..offchain.passport.validate import reference_issues, validate_document

    store.put_document(document)
    passport = document["metadata"]["passportIdentifier"]
    times: dict[str, list[float]] = {"export_ms": [], "validate_ms": [], "reference_validate_ms": []}
    for _ in range(iterations):
        exported, ms = _timed(store.export, passport, "authority", proof_ok=True, reader_did="did:city:bench",
                              height=1, time_s=1)
        if exported != document:
            raise RuntimeError("the exported document differs from the stored one")
        times["export_ms"].append(ms)
        for name, check in (("validate_ms", validate_document), ("reference_validate_ms", reference_issues)):
            issues, ms = _timed(check, exported)
            if issues:
                raise RuntimeError(f"the exported document does not validate: {issues[:3]}")
            times[name].append(ms)
    result = {name: statistics.median(values) for name, values in times.items()}
    result["validate_speedup"] = result["reference_validate_ms"] / result["validate_ms"]
    return result


def _concurrent_reads(scratch: Path, document: dict[str, Any], threads: int, each: int) -> dict[str, Any]:
    """Restricted tier reads per second from `threads` threads at once (the API's thread pool), with the
    access log's group commit and, as the same-run baseline, with one commit (one fsync) per read."""
    import concurrent.futures

    from ..offchain.passport.store import PassportStore, new_master_key

    stores = {"grouped": PassportStore(scratch / "reads-grouped", new_master_key()),
              "single": PassportStore(scratch / "reads-single", new_master_key(), max_log_group=1)}
    passport, rates = document["metadata"]["passportIdentifier"], {"grouped": [], "single": []}
    for store in stores.values():
        store.put_document(document)
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        for _ in range(3):  # alternating rounds, the median of each
            for name, store in stores.items():
                def reads(count: int, store=store) -> None:
                    for _ in range(count):
                        store.read_tier(passport, "legitimate", proof_ok=True, reader_did="did:city:bench",
                                        height=1, time_s=1)
                _, ms = _timed(lambda: list(pool.map(reads, [each] * threads)))
                rates[name].append(threads * each / ms * 1000)
    for store in stores.values():
        store.close()
    result = {f"restricted_reads_per_s_{threads}_threads": statistics.median(rates["grouped"]),
              f"restricted_reads_per_s_{threads}_threads_fsync_each": statistics.median(rates["single"])}
    result["group_commit_ratio"] = statistics.median(rates["grouped"]) / statistics.median(rates["single"])
    return result


def _restricted(node, scratch: Path, office_key, passport: str, iterations: int) -> dict[str, Any]:
    """Median restricted access (verify + tier decrypted) and raw anoncreds verify of the same presentations."""
    from ..modules.identity.presentations import resolve_identifiers
    from ..offchain.identity import IssuerService, TailsFetcher, TailsStore, Verifier, Wallet, raw_verify
    from ..offchain.identity.ledger import NodeLedger
    from ..offchain.identity.types import BATTERY_LEGITIMATE_INTEREST, BATTERY_LEGITIMATE_INTEREST_TYPE

    ledger = NodeLedger(node)
    office = IssuerService(ledger, [office_key], TailsStore(scratch / "tails", "https://office.example/tails/"))
    office.publish(dataclasses.replace(BATTERY_LEGITIMATE_INTEREST_TYPE, max_cred_num=16))
    wallet = Wallet.in_memory(TailsFetcher(scratch / "tails-cache",
                                           transport=lambda url: office.serve_tails(url.rsplit("/", 1)[-1])))
    request = wallet.request_credential(office.offer(BATTERY_LEGITIMATE_INTEREST), ledger)
    issued = office.issue(request, {"holder_did": "did:city:bench-reader", "role": "repairer"}, "BENCH-1")
    wallet.store_credential(issued, ledger)
    verifier = Verifier(ledger)
    access, raw, parts = [], [], {"verify_ms": [], "tier_read_ms": []}
    for index in range(iterations):
        request = verifier.request("passport-read", BATTERY_LEGITIMATE_INTEREST, reveal=["holder_did"])
        presentation = wallet.present(request, ledger)
        held = resolve_identifiers(ledger.state_at(request["non_revoked"]["to"]),
                                   json.loads(presentation)["identifiers"])
        args = (request, presentation, held.schemas, held.cred_defs, held.rev_reg_defs, held.status_lists)
        for first in ((raw, access) if index % 2 else (access, raw)):
            if first is raw:
                ok, ms = _timed(raw_verify, *args)
            else:
                ok, ms = _timed(_access, verifier, node.passports, request, presentation, passport, parts)
            if not ok:
                raise RuntimeError("the bench presentation did not verify")
            first.append(ms)
    result = {"restricted_access_ms": statistics.median(access), "raw_verify_ms": statistics.median(raw),
              **{name: statistics.median(times) for name, times in parts.items()}}
    result["restricted_to_raw_ratio"] = result["restricted_access_ms"] / result["raw_verify_ms"]
    return result


def _access(verifier, store, request: dict, presentation: str, passport: str, parts: dict[str, list]) -> bool:
    """What the read route does before it answers: the presentation verified, the tier decrypted (logged)."""
    from ..offchain.passport import reader_of

    verdict, ms = _timed(verifier.verify, request, presentation)
    parts["verify_ms"].append(ms)
    if not verdict["verified"]:
        return False
    part, ms = _timed(store.read_tier, passport, "legitimate", proof_ok=True, reader_did=reader_of(verdict["revealed"]),
                      height=verdict["height"], time_s=int(time.time()))
    parts["tier_read_ms"].append(ms)
    return bool(part)


def run(batteries: int, reports: int, batch: int, iterations: int, document_path: Path,
        scheme: str = "p256") -> dict[str, Any]:
    """Set up, measure every figure, return them (times in milliseconds)."""
    from ..node.runner import Node
    from ..offchain.identity.ledger import NodeLedger

    document = json.loads(document_path.read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        config, org, office = _home(scratch)
        node = Node(config)
        server = _Server(node)
        node.start()
        server.start()
        try:
            started = time.perf_counter()
            fleet = _batteries(NodeLedger(node), config.chain_id, org, batteries, SCHEMES[scheme])
            bodies = _report_bodies(config.chain_id, fleet, reports, batch)
            setup_s = time.perf_counter() - started
            result = _soh(node, server.url, bodies, batch)
            result.update(_bms_verify_rate(SCHEMES[scheme]))
            result["soh_to_verify_ratio"] = result["soh_reports_per_s"] / result["bms_verify_per_s"]
            result.update(_export(node.passports, document, iterations))
            result.update(_concurrent_reads(scratch, document, CONCURRENT_READERS, 2 * iterations))
            result.update(_restricted(node, scratch, office, document["metadata"]["passportIdentifier"], iterations))
        finally:
            server.stop()
            node.stop()
    result.update({"bms_scheme": scheme, "batteries": batteries, "reports_per_battery": reports, "batch": batch,
                   "iterations": iterations, "setup_s": setup_s, "cpus": os.cpu_count(),
                   "python": platform.python_version()})
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run, print a summary (unless --json) and the JSON line."""
    parser = argparse.ArgumentParser(prog="cityledger bench batteries", description=__doc__.splitlines()[0])
    parser.add_argument("--batteries", type=int, default=500)
    parser.add_argument("--reports", type=int, default=16, help="reports per battery")
    parser.add_argument("--batch", type=int, default=2000, help="reports per POST (at most 4096)")
    parser.add_argument("--iterations", type=int, default=15, help="export and access samples")
    parser.add_argument("--document", type=Path, default=DEFAULT_DOCUMENT,
                        help="a full BatteryPass 6.1.0 document (default: the repository's test example)")
    parser.add_argument("--scheme", choices=sorted(SCHEMES), default="p256",
                        help="the BMS keys' signature scheme (secure elements offer both)")
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    args = parser.parse_args(argv)
    if not args.document.is_file():
        parser.error(f"--document: no file {args.document}")
    if not 1 <= args.batch <= 4096:
        parser.error(f"--batch: expected 1 to 4096, got {args.batch}")
    result = run(max(1, args.batteries), max(1, args.reports), args.batch, max(1, args.iterations), args.document,
                 args.scheme)
    if not args.json:
        print(f"batteries: {result['soh_reports_per_s']:.0f} SoH reports/s through the API "
              f"({result['onchain_txs_per_report']:.5f} txs per report), export {result['export_ms']:.1f} ms, "
              f"restricted access {result['restricted_access_ms']:.1f} ms vs raw verify "
              f"{result['raw_verify_ms']:.1f} ms (x{result['restricted_to_raw_ratio']:.2f})")
    print(json.dumps(result, sort_keys=True))
    return 0
