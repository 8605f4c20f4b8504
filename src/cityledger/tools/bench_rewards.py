"""`cityledger bench rewards`: driving-score proofs and reward claims.

Proves --trips trips with the shipped circuit on this machine (each its own proof: a verdict is
cached by content, so repeating one proof would measure the cache), then prints, last, one JSON line:
  prove_s          median seconds to prove one trip (witness + proof), the owner's device's cost
  verify_ms        median ms of the handler's proof check with no cached verdict (ProofVerifier.verify:
                   the chain's instances and the proof written to a file, ezkl.verify, the verdict)
  raw_verify_ms    median ms of ezkl.verify alone on the same proofs, same run (the baseline),
                   interleaved with the two others claim by claim
  verify_ratio     verify_ms / raw_verify_ms
  check_tx_ms      median ms of a whole claim's check_tx on an in-process app, no cached verdict
                   (tx decode and signature, enrollment, pseudonym signature, proof)
  claims_per_s     claims submitted through POST /txs/batch of a solo node (subprocess, loopback)
                   and committed, per second of wall time (the node's verifier processes check the
                   proofs beside the signatures, one core each; check_tx and FinalizeBlock reuse
                   their verdicts)
  node_cpu_ms_per_claim, workers_cpu_ms_per_claim
                   CPU ms per claim during that run, of the node's process and of its verifier
                   processes: on a dedicated machine with C cores, claims_per_s is bounded by
                   1000 / node and by C x 1000 / (node + workers), whatever else shares this one
  With --engine cometbft, claims_per_s and the CPU figures are of a local CometBFT network of
  --validators validators (engines/cometbft/testnet.py, claims posted to validator0's API), whose
  apps check CheckTx batches and unseen block txs in verifier processes; the *_serial figures are
  the same network and claims with none (each claim's proof verified in the ABCI thread), measured
  first in the same run; parallel_ratio = claims_per_s / claims_per_s_serial;
  cometbft_cpu_ms_per_claim is of the `cometbft node` processes. All CPU figures sum the validators.
  proof_bytes      one proof's size
  sim_vehicle_steps_per_s  vehicle-seconds of SUMO city traffic (sim/traffic.py: libsumo step, subscriptions
                   read, 1 Hz samples in telemetry units, trip features and scores on arrival) per second of
                   wall time, on --sim-vehicles vehicles over --sim-seconds simulated seconds
  sim_sumo_share   the share of that wall time spent inside SUMO's own step (the rest is the vehicles' side)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.progress import Progress

from ..core.keys import PrivateKey
from ..core.tx import build_tx
from ..modules.identity import compute_did
from ..modules.mobility import CreateProgramme, circuit_dir, compute_instances
from ..modules.mobility.messages import MAX_PERIOD_BLOCKS
from ..offchain.mobility.circuit import Prover
from ..offchain.mobility.rewards import build_claim, close_trip, issue_enrollment

console = Console(stderr=True)
DEFAULT_TRIPS = 300  # claims through the API: fewer finish in well under a second, where start-up dominates the rate
ENROLLEES = 8  # claims come from this many pseudonymous accounts (a vehicle's claims are nonce-ordered)
ENGINES = ("solo", "cometbft")
MAX_VALIDATORS = 4  # of the local CometBFT network (--validators): every node shares this machine
OFFICE_SECRET = b"bench-office-secret-32-bytes...."


def _office_entry(key: PrivateKey) -> dict:
    public = {"scheme": "ed25519", "key": key.public_key.key.hex()}
    return {"controller": {"threshold": 1, "keys": [public]}, "salt": "", "services": [],
            "keys": [dict(public, fragment="key-1", purposes=["assertionMethod", "authentication"])],
            "accreditations": ["vehicle-registration"]}


def _features(index: int) -> list[int]:
    """Varied trips: some harsh events, some speeding, 5 to 44 km."""
    return [index % 4, index % 3, index % 2, index % 7, index % 11, 5 + index % 40]


def prove_claims(chain_id: str, trips: int, work: Path) -> tuple[list, list, list[float]]:
    """(pseudonyms, claims per pseudonym, prove seconds): every trip proven by the owner's prover."""
    prover = Prover(circuit_dir(), str(work / "prover"))
    pseudonyms = [PrivateKey.generate() for _ in range(ENROLLEES)]
    claims: list[list] = [[] for _ in pseudonyms]
    seconds = []
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("proving trips", total=trips)
        for index in range(trips):
            owner = index % ENROLLEES
            trip = close_trip(pseudonyms[owner], chain_id, 1, _features(index))
            started = time.perf_counter()
            claims[owner].append(build_claim(prover, trip))
            seconds.append(time.perf_counter() - started)
            progress.advance(task)
    return pseudonyms, claims, seconds


def setup_txs(chain_id: str, funder: PrivateKey, office: PrivateKey, pseudonyms, claims):
    """(programme and enrollment txs, claim txs): accounts are the pseudonyms' own keys."""
    office_did = compute_did(office.signer(), b"")
    programme = CreateProgramme("driving-score-v1", 10**12, 0, 1_000, 100, 10**9, 10**11, MAX_PERIOD_BLOCKS,
                                1_000_000, office_did)
    first = [build_tx(chain_id, [funder], 0, [programme])]
    enroll = [build_tx(chain_id, [key], 0, [issue_enrollment(office, OFFICE_SECRET, chain_id, 1, 0, f"car-{i}",
                                                             key.public_key, key.address())])
              for i, key in enumerate(pseudonyms)]
    claim_txs = []
    for nonce in range(max(len(c) for c in claims)):
        claim_txs += [build_tx(chain_id, [key], nonce + 1, [c[nonce]]) for key, c in zip(pseudonyms, claims)
                      if nonce < len(c)]
    return first, enroll, claim_txs


def _genesis(home: Path, office: PrivateKey) -> tuple[str, PrivateKey]:
    from ..node.home import load_key

    path = home / "genesis.json"
    genesis = json.loads(path.read_text())
    genesis["app_state"]["identity"] = {"dids": [_office_entry(office)]}
    path.write_text(json.dumps(genesis, indent=2, sort_keys=True) + "\n")
    return genesis["chain_id"], load_key(next((home / "keys").glob("*.json")))


def bench_handler(genesis: dict, txs: tuple, raw_dir: Path, claims) -> dict:
    """verify_ms (check_tx of each claim, no cached verdict) and raw_verify_ms (ezkl.verify alone),
    on an in-process app of genesis ({"chain_id", "app_state"})."""
    import ezkl

    from ..app import abc
    from ..app.application import CityApp
    from ..core.storage import Store
    from ..node.modules import default_modules, proof_verifier
    from ..offchain.identity.ledger import LocalLedger

    app = CityApp(Store(raw_dir / "ledger.sqlite"), default_modules(), genesis["chain_id"])
    app.init_chain(abc.InitChainRequest(chain_id=genesis["chain_id"], time_ns=1, initial_height=1,
                                        app_state_bytes=json.dumps(genesis["app_state"]).encode()))
    ledger = LocalLedger(app)
    first, enroll, claim_txs = txs
    for block in (first, enroll):
        assert all(outcome.ok for outcome in ledger.commit_block(block)), "bench: set-up txs refused"
    verifier, checks, handler, raw = proof_verifier(), [], [], []
    directory = circuit_dir()
    for index, (raw_tx, claim) in enumerate(zip(claim_txs, _in_tx_order(claims))):
        instances = compute_instances(claim.commitment, claim.score_fixed, claim.distance_fixed)
        path = raw_dir / f"proof-{index}.json"
        path.write_text(json.dumps({"instances": [instances], "proof": list(claim.proof)}))
        started = time.perf_counter()
        assert ezkl.verify(str(path), f"{directory}/settings.json", f"{directory}/vk.key", f"{directory}/kzg.srs")
        raw.append((time.perf_counter() - started) * 1000)
        verifier._cache.clear()
        started = time.perf_counter()
        assert verifier.verify(claim_model(), instances, claim.proof).verified
        handler.append((time.perf_counter() - started) * 1000)
        verifier._cache.clear()
        started = time.perf_counter()
        result = app.check_tx(raw_tx)
        checks.append((time.perf_counter() - started) * 1000)
        if result.code:
            raise RuntimeError(f"bench: claim refused by check_tx: {result.log}")
    return {"verify_ms": round(statistics.median(handler), 2), "raw_verify_ms": round(statistics.median(raw), 2),
            "check_tx_ms": round(statistics.median(checks), 2)}


def claim_model() -> str:
    """The model the bench's programme names."""
    return "driving-score-v1"


def _in_tx_order(claims) -> list:
    out = []
    for nonce in range(max(len(c) for c in claims)):
        out += [c[nonce] for c in claims if nonce < len(c)]
    return out


def bench_api(home: Path, txs: tuple, batch: int) -> dict:
    """Claims through POST /txs/batch of a solo node started as a subprocess."""
    import httpx

    from .bench import _post_batches, _wait_committed, _wait_healthy

    first, enroll, claim_txs = txs
    port = _port(home)
    log = open(home / "node.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "cityledger.cli.main", "up", "--home", str(home)],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            _wait_healthy(client)
            for block in (first, enroll):
                _post_batches(client, block)
                _wait_committed(client, block[-1])
            cpu_before, started = _cpu_seconds(proc.pid), time.perf_counter()
            for start in range(0, len(claim_txs), batch):
                _post_batches(client, claim_txs[start:start + batch])
            _wait_committed(client, claim_txs[-1])
            elapsed = time.perf_counter() - started
            cpu = [after - before for after, before in zip(_cpu_seconds(proc.pid), cpu_before)]
            paid = client.get("/query/mobility/programme", params={"id": "1"}).json()
    except RuntimeError:
        console.print((home / "node.log").read_text()[-3_000:])
        raise
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    _check_paid(paid, len(claim_txs))
    return {"claims_per_s": round(len(claim_txs) / elapsed, 1), "api_seconds": round(elapsed, 3),
            "node_cpu_ms_per_claim": round(cpu[0] * 1000 / len(claim_txs), 2),
            "workers_cpu_ms_per_claim": round(cpu[1] * 1000 / len(claim_txs), 2)}


def bench_api_cometbft(root: Path, genesis: dict, txs: tuple, batch: int, validators: int,
                       workers: int | None) -> dict:
    """Claims through POST /txs/batch of validator0 of a local CometBFT network (testnet.py), with
    each app's verifier processes (workers=None: one per core; 0: none, the ABCI thread verifies)."""
    import httpx

    from ..engines.cometbft.setup import ConsensusTimeouts
    from ..engines.cometbft.testnet import Testnet
    from .bench import _post_batches, _wait_committed, _wait_healthy
    from .bench_cometbft import DEFAULT_TIMEOUTS_MS

    first, enroll, claim_txs = txs
    propose, prevote, precommit, commit = DEFAULT_TIMEOUTS_MS  # bench cometbft's, for comparable blocks
    timeouts = ConsensusTimeouts(propose_ms=propose, prevote_ms=prevote, precommit_ms=precommit, commit_ms=commit,
                                 empty_block_interval_ms=1000)
    net = Testnet.create(root, validators=validators, chain_id=genesis["chain_id"], app_state=genesis["app_state"],
                         timeouts=timeouts, snapshot_interval=0, verify_workers=workers)
    net.start()
    try:
        net.wait_for_height(2, timeout_s=120)
        with httpx.Client(base_url=net.node("validator0").api_url, timeout=120) as client:
            _wait_healthy(client)
            for block in (first, enroll):
                _post_batches(client, block)
                _wait_committed(client, block[-1])
            cpu_before, started = _network_cpu(net), time.perf_counter()
            for start in range(0, len(claim_txs), batch):
                _post_batches(client, claim_txs[start:start + batch])
            _wait_committed(client, claim_txs[-1])
            elapsed = time.perf_counter() - started
            cpu = [after - before for after, before in zip(_network_cpu(net), cpu_before)]
            paid = client.get("/query/mobility/programme", params={"id": "1"}).json()
    except RuntimeError:
        console.print(net.log_tail("validator0", "app", 3_000))
        raise
    finally:
        net.stop()
    _check_paid(paid, len(claim_txs))
    per_claim = [round(seconds * 1000 / len(claim_txs), 2) for seconds in cpu]
    return {"claims_per_s": round(len(claim_txs) / elapsed, 1), "api_seconds": round(elapsed, 3),
            "node_cpu_ms_per_claim": per_claim[0], "workers_cpu_ms_per_claim": per_claim[1],
            "cometbft_cpu_ms_per_claim": per_claim[2]}


def bench_cometbft(root: Path, genesis: dict, txs: tuple, batch: int, validators: int) -> dict:
    """The API figures on two fresh networks of the same genesis: with no verifier processes (the
    ABCI thread verifies every claim: the baseline, *_serial) and with one per core."""
    serial = bench_api_cometbft(root / "serial", genesis, txs, batch, validators, 0)
    result = bench_api_cometbft(root / "parallel", genesis, txs, batch, validators, None)
    result.update({f"{name}_serial": value for name, value in serial.items()})
    result["parallel_ratio"] = round(result["claims_per_s"] / serial["claims_per_s"], 3)
    result["validators"] = validators
    return result


def _check_paid(paid: dict, sent: int) -> None:
    claims = paid.get("result", {}).get("claims")
    if claims != sent:
        raise RuntimeError(f"bench: {claims} claims paid of {sent} sent: {str(paid)[:300]}")


def _network_cpu(net) -> tuple[float, float, float]:
    """CPU seconds so far of a testnet's app processes, of their verifier processes and of its
    `cometbft node` processes, each summed over the nodes."""
    apps = workers = comet = 0.0
    for node in net.nodes:
        pids = net._read_pids(node.name)
        app, children = _cpu_seconds(pids["app"])
        apps, workers = apps + app, workers + children
        comet += _cpu_seconds(pids["cometbft"])[0]
    return apps, workers, comet


def _cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU seconds (user + system) so far of a process and of its live child processes (the node
    and its verifier workers): unlike wall time, they move little with other jobs' load."""
    def used(one: int) -> float:
        fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    children = [int(child) for task in Path(f"/proc/{pid}/task").iterdir()
                for child in (task / "children").read_text().split()]
    return used(pid), sum(used(child) for child in children)


def bench_sim(vehicles: int, seconds: int) -> dict:
    """sim_vehicle_steps_per_s from a short traffic run on the generated grid (fixed seed)."""
    from ..sim.traffic import run_traffic

    summary = run_traffic(vehicles, seconds / 3_600, seed=1)
    return {"sim_vehicle_steps_per_s": summary["vehicle_steps_per_s"], "sim_vehicle_steps": summary["vehicle_steps"],
            "sim_sumo_share": summary["sumo_share"], "sim_vehicles": vehicles}


def _port(home: Path) -> int:
    from ..node.home import load_config

    return load_config(home).api_port


def main(argv: list[str] | None = None) -> int:
    """Run the rewards benchmark; the last stdout line is the JSON result."""
    from .bench import _free_port

    parser = argparse.ArgumentParser(prog="cityledger bench rewards", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print only the JSON line on stdout")
    parser.add_argument("--trips", type=int, default=DEFAULT_TRIPS, help="trips to prove and claim (about 0.3 s of proving each)")
    parser.add_argument("--batch", type=int, default=50, help="claims per POST /txs/batch")
    parser.add_argument("--skip-api", action="store_true", help="no node: prove and verify figures only")
    parser.add_argument("--engine", choices=ENGINES, default="solo",
                        help="the node claims_per_s is measured on: a solo node, or a local CometBFT network "
                             "(then also measured with no verifier processes, the baseline: *_serial, parallel_ratio)")
    parser.add_argument("--validators", type=int, default=1, help="validators of the CometBFT network (1 to 4)")
    parser.add_argument("--skip-sim", action="store_true", help="no traffic run (sim_* figures)")
    parser.add_argument("--sim-vehicles", type=int, default=200, help="fleet of the traffic run (sim_vehicle_steps_per_s)")
    parser.add_argument("--sim-seconds", type=int, default=600, help="simulated seconds of the traffic run")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.trips < ENROLLEES:
        parser.error(f"--trips: expected at least {ENROLLEES}")
    if not 1 <= args.validators <= MAX_VALIDATORS or (args.validators > 1 and args.engine != "cometbft"):
        parser.error(f"--validators: expected 1 to {MAX_VALIDATORS}, and more than 1 only with --engine cometbft")
    from ..sim.traffic import check_args

    try:
        check_args(args.sim_vehicles, args.sim_seconds / 3_600, 1, 0)
    except ValueError as exc:
        parser.error(str(exc).replace("--vehicles", "--sim-vehicles").replace("--hours", "--sim-seconds"))
    from ..node.home import init_home

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        init_home(home, members=1, port=_free_port(), issuers=False)
        office = PrivateKey.generate()
        chain_id, funder = _genesis(home, office)
        pseudonyms, claims, prove = prove_claims(chain_id, args.trips, Path(tmp))
        txs = setup_txs(chain_id, funder, office, pseudonyms, claims)
        (Path(tmp) / "inprocess").mkdir()
        result = {"prove_s": round(statistics.median(prove), 3), "trips": args.trips,
                  "proof_bytes": len(claims[0][0].proof)}
        genesis = json.loads((home / "genesis.json").read_text())
        result.update(bench_handler(genesis, txs, Path(tmp) / "inprocess", claims))
        result["verify_ratio"] = round(result["verify_ms"] / result["raw_verify_ms"], 3)
        result["engine"] = args.engine
        if args.skip_api:
            pass
        elif args.engine == "solo":
            result.update(bench_api(home, txs, args.batch))
        else:
            result.update(bench_cometbft(Path(tmp), genesis, txs, args.batch, args.validators))
    if not args.skip_sim:
        result.update(bench_sim(args.sim_vehicles, args.sim_seconds))
    result.update({"machine": f"{platform.machine()} {os.cpu_count()} cores", "python": platform.python_version(),
                   "date": time.strftime("%Y-%m-%d")})
    if not args.json:
        for name, value in result.items():
            console.print(f"{name:>16}: {value}")
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
