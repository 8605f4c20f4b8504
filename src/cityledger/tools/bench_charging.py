"""`cityledger bench charging`: complete EV charging sessions through real WebSockets and a solo node.

Three processes, as an operator would run them: a solo node (`cityledger up` on a fresh home), the
operator's CSMS (offchain/charging) in a child process on a free loopback port, and this process,
which runs `--chargers` OCPP 2.0.1 charge points built from the `ocpp` package's charge-point side
and one vehicle client per charger (tools/sim_charging.py). Before the clock starts each vehicle
(its own P-256 key) is funded and opens one long-lived channel to the operator on the chain; the
CSMS reads each channel's terms back from the chain, and keeps its state in a SQLite store as a
node's does (`--store`: normal, the node's default; full; none, memory only). Each session is Started, `--meter-values`
Updated events and Ended; the vehicle pays every running cost with a voucher the CSMS checks (the
chain's verify_voucher) and the charger sends its next event only once that voucher is answered, so
every session is paid and ends with a receipt signed by the operator. While sessions run, the
CSMS's own redeem rounds (offchain/charging/redeem.py, as in a node; here sent over REST by
sim_charging.rest_settle) redeem each channel's newest voucher once its session ended, every
REDEEM_INTERVAL_S; after the last session the rest. The run fails unless every session
got a valid receipt and the operator's balance grew by exactly the sum of the bills.

The same run then repeats a shorter load (`--baseline-sessions`) with the ocpp package's own
per-message path (its jsonschema checks, its key conversions; fastpath.uninstall) in a fresh CSMS
process: `--baseline stock` as shipped (checks on an executor thread), `stock-inline` with the
package's ASYNC_VALIDATION off. `ratio_to_baseline` is sessions_per_s over the baseline's.

Run: cityledger bench charging [--chargers 8] [--sessions 400] [--meter-values 10] [--baseline-sessions 100]
     [--baseline stock|stock-inline] [--store normal|full|none] [--json]
The last line of output is one JSON object:
  sessions_per_s            complete sessions (receipt received) per second of wall time
  onchain_txs_per_session   channel txs committed (opens + redeems + closes) per session, counted in the blocks
  ocpp_msgs_per_s           OCPP CALLs either way (each answered by a CALLRESULT) per second
  p99_voucher_roundtrip_ms  a running cost reaching the vehicle -> its voucher signed, sent, verified, answered
  baseline_sessions_per_s, ratio_to_baseline   the baseline's wall-clock rate, and ours over it
  cpu_ms_per_session {csms, drivers, node}      CPU time of each process per session (baseline_cpu_ms_per_session)
  sessions_per_csms_cpu_s, csms_cpu_ratio_to_baseline   sessions per CPU second of the CSMS, and the baseline's
                            CSMS CPU per session over ours: on a shared machine, where wall-clock rates follow
                            the scheduler (a CSMS with a validation thread gets two threads' share), these hold
  onchain {opens, top_ups, redeems, closes, other, blocks}, billed_micro, sessions, chargers, load_avg_1m, ...
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ocpp import messages as ocpp_messages

from .. import sdk
from ..core.keys import SCHEME_P256, PrivateKey
from ..offchain.charging import ChargerRegistry, Csms, Tariff, fastpath
from ..offchain.charging.redeem import due_vouchers, redeem_round
from ..offchain.charging.store import SYNC_LEVELS, CsmsStore
from .sim_charging import (GUARD_S, ChargerLink, Progress, SimVehicle, close_charger, connect_charger, count_txs,
                           drive_charger, fund, open_channels, percentile, read_terms, rest_settle)

TARIFF = Tariff(per_kwh_micro=300_000, per_minute_micro=10_000, per_session_micro=50_000)
MAX_BILL_MICRO_PER_READING = 400_000  # 1 kWh and a minute at TARIFF, rounded up: sizes the deposits
MAX_CHARGERS = 1_000  # charge points (and vehicles) one run opens at once
MAX_SESSIONS = 100_000  # the CSMS's own cap on sessions held in memory
MAX_METER_VALUES = 1_000  # Updated events per session
NODE_START_S = 60  # how long the solo node may take to answer /health
DEFAULT_STORE = "normal"  # the CSMS's store as a node runs it ([charging] store_sync's default)
BASELINES = ("stock", "stock-inline")  # the ocpp package's own per-message path, as shipped or with inline checks


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _serve_csms(pipe: Any, url: str, chain_id: str, operator_seed: bytes, channel_ids: list[int],
                baseline: str | None, store: str) -> None:
    """The child process: the operator's CSMS (its own redeem rounds on), until the pipe says stop."""
    async def serve(folder: str) -> None:
        registry = ChargerRegistry()
        passwords = [registry.add_charger(f"CP-{i}", "bench-operator") for i in range(len(channel_ids))]
        operator = PrivateKey(SCHEME_P256, operator_seed)
        # The node's configuration: its SQLite store ([charging] store_sync), or none (memory only).
        csms_store = None if store == "none" else CsmsStore(Path(folder) / "csms.sqlite", store)
        csms = Csms(registry, TARIFF, operator, store=csms_store)
        if baseline:
            fastpath.uninstall()
            # The package's own switch: its schema checks inline instead of on an executor thread.
            ocpp_messages.ASYNC_VALIDATION = baseline == "stock"
        with sdk.Client(url) as client:
            terms = [read_terms(client, chain_id, channel_id) for channel_id in channel_ids]
            tokens = [csms.authorize_vehicle(t) for t in terms]
            csms.settle = rest_settle(client, chain_id, operator)
            port = await csms.start("127.0.0.1", 0)  # its redeem rounds start with it
            pipe.send((port, passwords, tokens, [t.nonce for t in terms]))
            await asyncio.get_running_loop().run_in_executor(None, pipe.recv)  # "go"
            cpu = time.process_time()
            await asyncio.get_running_loop().run_in_executor(None, pipe.recv)  # "stop"
            cpu = time.process_time() - cpu
            while due_vouchers(csms, time.time()):  # what the last sessions paid
                await redeem_round(csms)
            pipe.send({"receipts": csms.receipts_issued, "redeem_txs": csms.redeemed_txs, "cpu_s": cpu,
                       "sessions_held": len(csms.sessions)})
            await csms.stop()
        if csms_store is not None:
            csms_store.close()

    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(serve(folder))


async def _drive(port: int, passwords: list[str], tokens: list[str], vehicles: list[PrivateKey], chain_id: str,
                 channel_ids: list[int], nonces: list[int], sessions: int, readings: int, pipe: Any) -> dict:
    """Connect every vehicle and charger, then run all sessions at once; the figures of the run."""
    base = f"ws://127.0.0.1:{port}"
    clients = [SimVehicle(base, tokens[i], key, chain_id, channel_ids[i], nonces[i]) for i, key in enumerate(vehicles)]
    links: list[ChargerLink] = []
    for client in clients:
        await client.__aenter__()
    for i in range(len(vehicles)):
        links.append(await connect_charger(base, f"CP-{i}", passwords[i]))
    shares = [sessions // len(vehicles) + (i < sessions % len(vehicles)) for i in range(len(vehicles))]
    progress = Progress()
    calls_before = sum(link.calls for link in links)
    pipe.send("go")
    cpu, started = time.process_time(), time.perf_counter()
    try:
        await asyncio.gather(*(drive_charger(links[i], clients[i], tokens[i], shares[i], readings, progress)
                               for i in range(len(vehicles))))
    finally:
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        pipe.send("stop")
        for link in links:
            await close_charger(link)
        for client in clients:
            await client.__aexit__()
    calls = sum(link.calls + link.station.cost_updates for link in links) - calls_before
    return {"seconds": seconds, "ocpp_calls": calls, "cpu_s": cpu, "progress": progress,
            "roundtrips": [ms for c in clients for ms in c.roundtrips_ms],
            "refused": sum(len(c.refusals) for c in clients)}


def _measure(url: str, chain_id: str, operator_seed: bytes, vehicles: list[PrivateKey], channel_ids: list[int],
             sessions: int, readings: int, baseline: str | None, node_pid: int, store: str) -> dict:
    """One measured load against a fresh CSMS process; figures checked against what the CSMS issued."""
    ours, theirs = multiprocessing.Pipe()
    child = multiprocessing.get_context("spawn").Process(
        target=_serve_csms, args=(theirs, url, chain_id, operator_seed, channel_ids, baseline, store), daemon=True)
    child.start()
    try:
        if not _answered(ours, child):
            raise RuntimeError(f"the CSMS did not start (exit code {child.exitcode})")
        port, passwords, tokens, nonces = ours.recv()
        fastpath.install()  # the load generator's charge points: the same in the run and its baseline
        node_cpu = _cpu_s(node_pid)
        figures = asyncio.run(_drive(port, passwords, tokens, vehicles, chain_id, channel_ids, nonces, sessions,
                                     readings, ours))
        figures["node_cpu_s"] = _cpu_s(node_pid) - node_cpu
        served = ours.recv() if ours.poll(GUARD_S * 2) else {}
    finally:
        child.join(GUARD_S)
        if child.is_alive():
            child.terminate()
    if served.get("receipts", 0) < sessions or figures["progress"].sessions != sessions:
        raise RuntimeError(f"expected {sessions} paid sessions, the CSMS issued {served.get('receipts')} receipts "
                           f"and the vehicles got {figures['progress'].sessions}")
    return {**figures, "csms": served}


def _answered(pipe: Any, child: Any) -> bool:
    """True once the child sent something; False if it died first or took over GUARD_S."""
    deadline = time.monotonic() + GUARD_S
    while time.monotonic() < deadline and child.is_alive():
        if pipe.poll(0.1):
            return True
    return pipe.poll(0)


def _start_node(home: Path, port: int) -> subprocess.Popen:
    """`cityledger up` on the home, once it answers /health."""
    proc = subprocess.Popen([sys.executable, "-m", "cityledger.cli.main", "up", "--home", str(home)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + NODE_START_S
    with sdk.Client(f"http://127.0.0.1:{port}") as client:
        while time.monotonic() < deadline:
            try:
                client.health()
                return proc
            except Exception:  # noqa: BLE001 - not listening yet
                time.sleep(0.2)
    proc.terminate()
    raise RuntimeError(f"the solo node did not answer /health within {NODE_START_S} s")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(chargers: int, sessions: int, readings: int, baseline_sessions: int, baseline: str = "stock",
        store: str = DEFAULT_STORE) -> dict:
    """Start a solo node, open the channels, measure the load and its baseline; every figure."""
    from ..node.home import init_home, load_key

    with tempfile.TemporaryDirectory() as tmp:
        home, port = Path(tmp) / "home", _free_port()
        init_home(home, chain_id="bench-charging-1", members=1, port=port, issuers=False)
        funder = load_key(next((home / "keys").glob("*.json")))
        proc = _start_node(home, port)
        try:
            return _run_on_node(f"http://127.0.0.1:{port}", "bench-charging-1", funder, proc.pid, chargers, sessions,
                                readings, baseline_sessions, baseline, store)
        finally:
            proc.terminate()
            proc.wait(GUARD_S)


def _run_on_node(url: str, chain_id: str, funder: PrivateKey, node_pid: int, chargers: int, sessions: int,
                 readings: int, baseline_sessions: int, baseline: str, store: str) -> dict:
    """Fund the vehicles, open their channels, run the load and its baseline; checked on chain."""
    operator_seed = os.urandom(32)
    operator = PrivateKey(SCHEME_P256, operator_seed)
    vehicles = [PrivateKey(SCHEME_P256, os.urandom(32)) for _ in range(chargers)]
    per_vehicle = -(-(sessions + baseline_sessions) // chargers)
    deposit = per_vehicle * (readings + 1) * MAX_BILL_MICRO_PER_READING + TARIFF.per_session_micro * per_vehicle
    with sdk.Client(url) as client:
        fund(client, chain_id, funder, [key.address() for key in vehicles], deposit)
        first = client.get_block().height + 1
        channel_ids = open_channels(client, chain_id, vehicles, operator.address(), deposit)
        before = client.get_account(operator.address()).balance
        main = _measure(url, chain_id, operator_seed, vehicles, channel_ids, sessions, readings, None, node_pid,
                        store)
        base = (_measure(url, chain_id, operator_seed, vehicles, channel_ids, baseline_sessions, readings, baseline,
                         node_pid, store) if baseline_sessions else None)
        gained = client.get_account(operator.address()).balance - before
        counts = count_txs(client, first, client.get_block().height)
    billed = main["progress"].billed_micro + (base["progress"].billed_micro if base else 0)
    if gained != billed:
        raise RuntimeError(f"the operator gained {gained} micro-credits on chain, the receipts bill {billed}")
    return {**_figures(main, base, counts, sessions, baseline_sessions, readings, chargers, billed),
            "baseline": baseline if base else None, "store": store}


def _figures(main: dict, base: dict | None, counts: dict, sessions: int, baseline_sessions: int, readings: int,
             chargers: int, billed: int) -> dict:
    """The JSON result."""
    seconds = main["seconds"]
    rate = sessions / seconds
    base_rate = baseline_sessions / base["seconds"] if base else None
    channel_txs = counts["opens"] + counts["top_ups"] + counts["redeems"] + counts["closes"]
    per_session = {"csms": main["csms"]["cpu_s"], "drivers": main["cpu_s"], "node": main["node_cpu_s"]}
    return {"sessions_per_s": round(rate, 1),
            "onchain_txs_per_session": round(channel_txs / (sessions + baseline_sessions), 3),
            "ocpp_msgs_per_s": round(main["ocpp_calls"] / seconds),
            "p99_voucher_roundtrip_ms": round(percentile(main["roundtrips"], 0.99), 2),
            "baseline_sessions_per_s": round(base_rate, 1) if base_rate else None,
            "ratio_to_baseline": round(rate / base_rate, 2) if base_rate else None,
            "cpu_ms_per_session": {k: round(v * 1000 / sessions, 2) for k, v in per_session.items()},
            "baseline_cpu_ms_per_session": {"csms": round(base["csms"]["cpu_s"] * 1000 / baseline_sessions, 2),
                                            "drivers": round(base["cpu_s"] * 1000 / baseline_sessions, 2)}
            if base else None,
            # Sessions one core of CSMS serves, from its own CPU time: what a busy machine cannot blur.
            "sessions_per_csms_cpu_s": round(sessions / main["csms"]["cpu_s"], 1),
            "csms_cpu_ratio_to_baseline": round(base["csms"]["cpu_s"] / baseline_sessions
                                                / (main["csms"]["cpu_s"] / sessions), 2) if base else None,
            "onchain": counts,
            "billed_micro": billed, "sessions": sessions, "baseline_sessions": baseline_sessions,
            "meter_values": readings, "chargers": chargers, "vouchers": len(main["roundtrips"]),
            "vouchers_refused": main["refused"], "receipts": main["progress"].sessions, "seconds": round(seconds, 3),
            "machine": f"{platform.machine()} {os.cpu_count()} cores", "load_avg_1m": round(os.getloadavg()[0], 2),
            "python": platform.python_version(), "date": time.strftime("%Y-%m-%d")}


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run, print a summary (unless --json) and the JSON line."""
    parser = argparse.ArgumentParser(prog="cityledger bench charging", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chargers", type=int, default=8, help="charge points (and vehicles) at once")
    parser.add_argument("--sessions", type=int, default=400, help="complete sessions in all")
    parser.add_argument("--meter-values", type=int, default=10, help="Updated events with a reading per session")
    parser.add_argument("--baseline-sessions", type=int, default=100,
                        help="sessions of the baseline (the ocpp package's own per-message path); 0: none")
    parser.add_argument("--baseline", choices=BASELINES, default="stock",
                        help="stock: the ocpp package as shipped (schema checks on an executor thread); "
                             "stock-inline: the same checks inline (its ASYNC_VALIDATION off)")
    parser.add_argument("--store", choices=(*SYNC_LEVELS, "none"), default=DEFAULT_STORE,
                        help="the CSMS's SQLite store as the node runs it: normal (the node's default), full "
                             "(an fsync per write), none (memory only)")
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if not 1 <= args.chargers <= MAX_CHARGERS:
        parser.error(f"--chargers: expected 1 to {MAX_CHARGERS}")
    if not args.chargers <= args.sessions <= MAX_SESSIONS:
        parser.error(f"--sessions: expected --chargers ({args.chargers}) to {MAX_SESSIONS}")
    if not 1 <= args.meter_values <= MAX_METER_VALUES:
        parser.error(f"--meter-values: expected 1 to {MAX_METER_VALUES}")
    if args.baseline_sessions and not args.chargers <= args.baseline_sessions <= MAX_SESSIONS:
        parser.error(f"--baseline-sessions: expected 0 or --chargers ({args.chargers}) to {MAX_SESSIONS}")
    result = run(args.chargers, args.sessions, args.meter_values, args.baseline_sessions, args.baseline, args.store)
    if not args.json:
        print(f"{result['sessions']} sessions in {result['seconds']} s: {result['sessions_per_s']} sessions/s "
              f"({result['ratio_to_baseline']}x the baseline), {result['onchain_txs_per_session']} txs on chain per "
              f"session, {result['ocpp_msgs_per_s']} OCPP msgs/s, p99 voucher round trip "
              f"{result['p99_voucher_roundtrip_ms']} ms", file=sys.stderr)
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
