"""`cityledger bench charging`: complete EV charging sessions through real WebSockets.

The CSMS (offchain/charging) runs in a child process on a free loopback port; this process runs
`--chargers` OCPP 2.0.1 charge points built from the `ocpp` package's charge-point side and one
vehicle client per charger, each vehicle with its own payment channel (P-256 voucher key). Each
session is Started, `--meter-values` Updated events and Ended; the vehicle pays every running cost
the CSMS tells it with a voucher the CSMS verifies (the chain's verify_voucher), and the charger
sends its next event only once that voucher is answered, so every session is fully paid and ends
with a receipt signed by the operator. No ledger runs: `onchain_txs_per_session` is not measured
here (the operator would redeem the channel's newest voucher, one tx for any number of sessions).

Run: cityledger bench charging [--chargers 8] [--sessions 200] [--meter-values 10] [--json]
The last line of output is one JSON object:
  sessions_per_s       complete sessions (receipt received) per second of wall time
  ocpp_msgs_per_s      OCPP CALLs either way (each answered by a CALLRESULT) per second
  p99_voucher_roundtrip_ms   a running cost reaching the vehicle -> its voucher signed, sent, verified
                             and answered by the CSMS, 99th percentile
  sessions, meter_values, chargers, vouchers, vouchers_refused, receipts, seconds, machine, python, date
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing
import os
import platform
import sys
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from ocpp.routing import on
from ocpp.v201 import ChargePoint
from ocpp.v201 import call, call_result
from websockets.asyncio.client import connect

from ..core.keys import SCHEME_P256, PrivateKey
from ..offchain.charging import ChannelTerms, ChargerRegistry, Csms, Tariff, VehicleClient
from ..offchain.charging import fastpath

CHAIN_ID = "bench-city-1"
TARIFF = Tariff(per_kwh_micro=300_000, per_minute_micro=10_000, per_session_micro=50_000)
DEPOSIT_MICRO = 10**15  # each vehicle's channel: enough for every session of a run
WH_PER_READING = 1_000
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
GUARD_S = 60  # only keeps a broken run from hanging
MAX_CHARGERS = 1_000  # charge points (and vehicles) one run opens at once
MAX_SESSIONS = 100_000  # the CSMS's own cap on sessions held in memory
MAX_METER_VALUES = 1_000  # Updated events per session


def _serve_csms(pipe: Any, vehicle_seeds: list[bytes]) -> None:
    """The child process: one CSMS with a charger and a vehicle per seed, until the pipe says stop."""
    async def serve() -> None:
        registry = ChargerRegistry()
        passwords = [registry.add_charger(f"CP-{i}", "bench-operator") for i in range(len(vehicle_seeds))]
        csms = Csms(registry, TARIFF, PrivateKey.generate())
        tokens = [csms.authorize_vehicle(ChannelTerms(CHAIN_ID, i + 1, PrivateKey(SCHEME_P256, seed).public_key,
                                                      DEPOSIT_MICRO)) for i, seed in enumerate(vehicle_seeds)]
        port = await csms.start("127.0.0.1", 0)
        pipe.send((port, passwords, tokens))
        await asyncio.get_running_loop().run_in_executor(None, pipe.recv)
        pipe.send({"receipts": len(csms.receipts), "ended": sum(s.ended for s in csms.sessions.values())})
        await csms.stop()

    asyncio.run(serve())


class BenchStation(ChargePoint):
    """A charge point that answers the CSMS's CostUpdated calls and counts them."""

    cost_updates = 0

    @on("CostUpdated")
    def on_cost_updated(self, total_cost, transaction_id, **_):
        self.cost_updates += 1
        return call_result.CostUpdated()


class BenchVehicle(VehicleClient):
    """A vehicle that times each voucher until the CSMS answers it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent: list[float] = []
        self.roundtrips_ms: list[float] = []
        self.answered = 0
        self.changed = asyncio.Event()

    async def _on_frame(self, connection: Any, data: dict) -> None:
        if data["type"] == "cost":
            self.sent.append(time.perf_counter())
        elif data["type"] in ("accepted", "refused", "receipt"):
            self.roundtrips_ms.append((time.perf_counter() - self.sent[self.answered]) * 1000)
            self.answered += 1
            self.changed.set()
        await super()._on_frame(connection, data)

    async def until_answered(self, count: int) -> None:
        """Wait until `count` vouchers in all have been answered."""
        while self.answered < count:
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), GUARD_S)


def _event(kind: str, session_id: str, seq: int, token: str | None) -> call.TransactionEvent:
    """A 2.0.1 TransactionEvent `seq` minutes into a session with `seq` kWh delivered."""
    stamp = (T0 + timedelta(minutes=seq)).isoformat().replace("+00:00", "Z")
    meter = [{"timestamp": stamp, "sampled_value": [{"value": seq * WH_PER_READING, "unit_of_measure": {"unit": "Wh"},
                                                     "measurand": "Energy.Active.Import.Register"}]}]
    return call.TransactionEvent(
        event_type=kind, timestamp=stamp, trigger_reason="MeterValuePeriodic" if kind == "Updated" else "Authorized",
        seq_no=seq, transaction_info={"transaction_id": session_id}, meter_value=meter,
        evse={"id": 1, "connector_id": 1},
        id_token={"id_token": token, "type": "Central"} if token else None)


async def _charger(index: int, base: str, password: str, vehicle: BenchVehicle, token: str, sessions: int,
                   readings: int) -> int:
    """Run `sessions` complete sessions on one charger; return the OCPP calls it made."""
    auth = base64.b64encode(f"CP-{index}:{password}".encode()).decode()
    async with connect(f"{base}/ocpp/CP-{index}", subprotocols=["ocpp2.0.1"],
                       additional_headers={"Authorization": f"Basic {auth}"}) as ws:
        station = BenchStation(f"CP-{index}", ws)
        loop = asyncio.create_task(station.start())
        await station.call(call.BootNotification(charging_station={"model": "bench", "vendor_name": "cityledger"},
                                                 reason="PowerUp"))
        calls = 1
        for number in range(sessions):
            session_id = f"CP-{index}-{number}"
            for seq in range(readings + 2):
                kind = "Started" if seq == 0 else "Ended" if seq == readings + 1 else "Updated"
                await station.call(_event(kind, session_id, seq, token if seq == 0 else None))
                calls += 1
                await vehicle.until_answered(number * (readings + 2) + seq + 1)
            if vehicle.receipts.qsize() != number + 1:
                raise RuntimeError(f"session {session_id}: no receipt after the last voucher")
        loop.cancel()
        return calls + station.cost_updates


async def _drive(port: int, passwords: list[str], tokens: list[str], seeds: list[bytes], sessions: int,
                 readings: int) -> dict:
    """All chargers and vehicles at once; the figures of the run."""
    base = f"ws://127.0.0.1:{port}"
    vehicles = [BenchVehicle(base, tokens[i], PrivateKey(SCHEME_P256, seed), CHAIN_ID, i + 1)
                for i, seed in enumerate(seeds)]
    shares = [sessions // len(seeds) + (i < sessions % len(seeds)) for i in range(len(seeds))]
    for vehicle in vehicles:
        await vehicle.__aenter__()
    started = time.perf_counter()
    try:
        calls = await asyncio.gather(*(_charger(i, base, passwords[i], vehicles[i], tokens[i], shares[i], readings)
                                       for i in range(len(seeds))))
    finally:
        seconds = time.perf_counter() - started
        for vehicle in vehicles:
            await vehicle.__aexit__()
    roundtrips = sorted(ms for v in vehicles for ms in v.roundtrips_ms)
    return {"seconds": seconds, "ocpp_calls": sum(calls), "roundtrips": roundtrips,
            "refused": sum(len(v.refusals) for v in vehicles), "receipts": sum(v.receipts.qsize() for v in vehicles)}


def run(chargers: int, sessions: int, readings: int) -> dict:
    """Start the CSMS in a child process, drive the sessions, and return every figure."""
    seeds = [os.urandom(32) for _ in range(chargers)]
    fastpath.install()
    ours, theirs = multiprocessing.Pipe()
    child = multiprocessing.get_context("spawn").Process(target=_serve_csms, args=(theirs, seeds), daemon=True)
    child.start()
    try:
        if not ours.poll(GUARD_S):
            raise RuntimeError("the CSMS did not start")
        port, passwords, tokens = ours.recv()
        figures = asyncio.run(_drive(port, passwords, tokens, seeds, sessions, readings))
        ours.send("stop")
        served = ours.recv() if ours.poll(GUARD_S) else {}
    finally:
        child.join(GUARD_S)
        if child.is_alive():
            child.terminate()
    if served.get("receipts") != sessions or figures["receipts"] != sessions:
        raise RuntimeError(f"expected {sessions} paid sessions, the CSMS issued {served.get('receipts')} receipts "
                           f"and the vehicles got {figures['receipts']}")
    seconds, roundtrips = figures["seconds"], figures["roundtrips"]
    return {"sessions_per_s": round(sessions / seconds, 1), "ocpp_msgs_per_s": round(figures["ocpp_calls"] / seconds),
            "p99_voucher_roundtrip_ms": round(roundtrips[min(len(roundtrips) - 1, int(len(roundtrips) * 0.99))], 2),
            "sessions": sessions, "meter_values": readings, "chargers": chargers, "vouchers": len(roundtrips),
            "vouchers_refused": figures["refused"], "receipts": figures["receipts"], "seconds": round(seconds, 3),
            "machine": f"{platform.machine()} {os.cpu_count()} cores", "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d")}


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run, print a summary (unless --json) and the JSON line."""
    parser = argparse.ArgumentParser(prog="cityledger bench charging", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chargers", type=int, default=8, help="charge points (and vehicles) at once")
    parser.add_argument("--sessions", type=int, default=200, help="complete sessions in all")
    parser.add_argument("--meter-values", type=int, default=10, help="Updated events with a reading per session")
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if not 1 <= args.chargers <= MAX_CHARGERS:
        parser.error(f"--chargers: expected 1 to {MAX_CHARGERS}")
    if not args.chargers <= args.sessions <= MAX_SESSIONS:
        parser.error(f"--sessions: expected --chargers ({args.chargers}) to {MAX_SESSIONS}")
    if not 1 <= args.meter_values <= MAX_METER_VALUES:
        parser.error(f"--meter-values: expected 1 to {MAX_METER_VALUES}")
    result = run(args.chargers, args.sessions, args.meter_values)
    if not args.json:
        print(f"{result['sessions']} sessions in {result['seconds']} s: {result['sessions_per_s']} sessions/s, "
              f"{result['ocpp_msgs_per_s']} OCPP msgs/s, "
              f"p99 voucher round trip {result['p99_voucher_roundtrip_ms']} ms",
              file=sys.stderr)
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
