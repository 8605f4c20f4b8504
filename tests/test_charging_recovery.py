"""The CSMS across faults: killed and restarted mid-session, chargers replaying offline events by seqNo,
sessions that never end, and the calls the CSMS makes (RequestStartTransaction, GetVariables).

Charge points are the ocpp package's, over real WebSockets. Timeouts only keep a broken test from
hanging; no assertion depends on time (the idle clock is passed in).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ocpp.routing import on
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201

from test_charging import GUARD_S, TARIFF, Station16, Station201, World, at, energy, event, until
from cityledger.core.keys import SCHEME_P256, PrivateKey
from cityledger.offchain.charging import ChargerRegistry, Csms, VehicleClient, compute_cost_micro
from cityledger.offchain.charging.expiry import close_idle
from cityledger.offchain.charging.store import CsmsStore

DRIVER = Path(__file__).with_name("csms_driver.py")


class Vehicle(VehicleClient):
    """A paying vehicle that also notes the amounts the CSMS accepted."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.accepted: list[int] = []

    async def _on_frame(self, connection, data):
        if data["type"] == "accepted":
            self.accepted.append(data["amount"])
        elif data["type"] == "receipt":
            self.accepted.append(data["cost_micro"])
        await super()._on_frame(connection, data)


class Remote201(Station201):
    """A 2.0.1 charge point that answers the CSMS's remote start and variable reads."""

    def __init__(self, *args):
        super().__init__(*args)
        self.starts: list[dict] = []

    @on("RequestStartTransaction")
    def on_request_start(self, id_token, remote_start_id, evse_id=None, **_):
        self.starts.append({"id_token": id_token, "remote_start_id": remote_start_id, "evse_id": evse_id})
        return result201.RequestStartTransaction(status="Accepted")

    @on("GetVariables")
    def on_get_variables(self, get_variable_data, **_):
        known = {("OCPPCommCtrlr", "HeartbeatInterval"): "300"}
        return result201.GetVariables(get_variable_result=[
            {"attribute_status": "Accepted" if (d["component"]["name"], d["variable"]["name"]) in known else
             "UnknownVariable", "component": d["component"], "variable": d["variable"],
             **({"attribute_value": known[(d["component"]["name"], d["variable"]["name"])]}
                if (d["component"]["name"], d["variable"]["name"]) in known else {})}
            for d in get_variable_data])


class Remote16(Station16):
    """A 1.6-J charge point answering RemoteStartTransaction and GetConfiguration."""

    def __init__(self, *args):
        super().__init__(*args)
        self.starts: list[dict] = []

    @on("RemoteStartTransaction")
    def on_remote_start(self, id_tag, connector_id=None, **_):
        self.starts.append({"id_tag": id_tag, "connector_id": connector_id})
        return result16.RemoteStartTransaction(status="Accepted")

    @on("GetConfiguration")
    def on_get_configuration(self, key=None, **_):
        return result16.GetConfiguration(configuration_key=[{"key": "HeartbeatInterval", "readonly": False,
                                                             "value": "300"}], unknown_key=["Nope"])


def updated(seq: int, wh: int, minutes: int, offline: bool = False):
    return call201.TransactionEvent(event_type="Updated", timestamp=at(minutes), trigger_reason="MeterValuePeriodic",
                                    seq_no=seq, transaction_info={"transaction_id": "tx-1"},
                                    meter_value=energy(wh, minutes), offline=offline)


def ended(seq: int, wh: int, minutes: int, offline: bool = False):
    return call201.TransactionEvent(event_type="Ended", timestamp=at(minutes), trigger_reason="EVDeparted",
                                    seq_no=seq, transaction_info={"transaction_id": "tx-1"},
                                    meter_value=energy(wh, minutes), offline=offline)


async def _station(world: World, cls, subprotocol: str = "ocpp2.0.1"):
    ws = await world.charger(None, subprotocol).__aenter__()
    station = cls("CP-1", ws)
    return ws, station, asyncio.create_task(station.start())


def test_offline_events_replayed_by_seqno_settle_once_duplicates_and_late_ones_change_nothing():
    async def scenario():
        async with World() as world, world.vehicle() as vehicle:
            ws, station, loop = await _station(world, Station201)
            await station.call(event("Started", 0, 1_000, 0, world.id_token))
            await station.call(updated(1, 2_000, 5))
            await until(world.owed_is_paid)
            await ws.close()  # the charger goes offline and queues its events
            ws, station, loop = await _station(world, Station201)
            for message in [updated(3, 4_000, 15, True), updated(2, 3_000, 10, True),  # out of order
                            updated(3, 4_000, 15, True), updated(1, 2_000, 5, True),  # duplicates
                            ended(4, 4_500, 18, True), ended(4, 4_500, 18, True)]:
                answer = await station.call(message, suppress=False)
                assert answer.total_cost is not None
            receipt = await asyncio.wait_for(vehicle.receipts.get(), GUARD_S)
            loop.cancel()
            return world, receipt

    world, receipt = asyncio.run(scenario())
    bill = compute_cost_micro(TARIFF, 3_500, 18 * 60)
    session = world.csms.sessions["tx-1"]
    assert (session.energy_wh, session.seq_no, session.ended) == (3_500, 4, True)
    assert receipt.cost_micro == bill == world.csms.final_voucher("tx-1").amount


def test_ocpp16_resent_start_queued_meter_values_and_a_resent_stop_settle_once():
    async def scenario():
        async with World() as world, world.vehicle() as vehicle:
            ws, station, loop = await _station(world, Station16, "ocpp1.6")
            start = await station.call(call16.StartTransaction(connector_id=1, id_tag=world.id_token, meter_start=0,
                                                               timestamp=at(0)))
            tx = start.transaction_id
            await ws.close()
            ws, station, loop = await _station(world, Station16, "ocpp1.6")
            # Its answer was lost: the charger sends the same StartTransaction again and gets the same id.
            again = await station.call(call16.StartTransaction(connector_id=1, id_tag=world.id_token, meter_start=0,
                                                               timestamp=at(0)))
            assert (again.transaction_id, again.id_tag_info["status"], len(world.csms.sessions)) == (tx, "Accepted", 1)

            def meter(wh, minute):
                return call16.MeterValues(connector_id=1, transaction_id=tx, meter_value=[
                    {"timestamp": at(minute), "sampled_value": [{"value": str(wh)}]}])
            for message in [meter(1_000, 3), meter(2_000, 6), meter(1_000, 3),  # a stale reading sent again
                            call16.StopTransaction(meter_stop=2_500, timestamp=at(8), transaction_id=tx),
                            call16.StopTransaction(meter_stop=2_500, timestamp=at(8), transaction_id=tx)]:
                await station.call(message, suppress=False)
            receipt = await asyncio.wait_for(vehicle.receipts.get(), GUARD_S)
            loop.cancel()
            return world, receipt, str(tx)

    world, receipt, tx = asyncio.run(scenario())
    assert receipt.cost_micro == compute_cost_micro(TARIFF, 2_500, 8 * 60) == world.csms.final_voucher(tx).amount


def test_hostile_seqno_is_refused_naming_the_field_and_the_session_goes_on():
    async def scenario():
        async with World() as world:
            ws, station, loop = await _station(world, Station201)
            await station.call(event("Started", 0, 1_000, 0, world.id_token))
            errors = []
            for seq in (-1, 2**31, 10**30):
                try:
                    await station.call(updated(seq, 9_000, 9), suppress=False)
                except Exception as error:  # noqa: BLE001 - the CALLERROR is what is checked
                    errors.append(str(error))
            await station.call(updated(1, 2_000, 5), suppress=False)
            loop.cancel()
            return world, errors

    world, errors = asyncio.run(scenario())
    assert len(errors) == 3 and all("seq_no" in e for e in errors)
    assert world.csms.sessions["tx-1"].energy_wh == 1_000


def test_session_that_never_ends_is_closed_after_the_timeout_with_its_newest_voucher_redeemed():
    redeemed = []

    async def scenario():
        async with World() as world, world.vehicle() as vehicle:
            world.csms.session_timeout_s = 600
            world.csms.settle = lambda items: [redeemed.append((t.channel_id, v)) for t, v in items]
            ws, station, loop = await _station(world, Station201)
            await station.call(event("Started", 0, 1_000, 0, world.id_token))
            await station.call(updated(1, 3_000, 10))
            await until(world.owed_is_paid)
            assert await close_idle(world.csms, time.time()) == []  # not idle yet
            closed = await close_idle(world.csms, time.time() + 601)
            stopped = await asyncio.wait_for(station.stops.get(), GUARD_S)
            loop.cancel()
            return world, closed, stopped, vehicle

    world, closed, stopped, vehicle = asyncio.run(scenario())
    assert [s.session_id for s in closed] == ["tx-1"] == [stopped] and closed[0].ended
    bill = compute_cost_micro(TARIFF, 2_000, 10 * 60)
    # The newest voucher when the session closed was redeemed; the vehicle, told its bill, may sign
    # one more for the same amount, which the operator holds for a later redeem.
    assert [(c, v.amount) for c, v in redeemed] == [(7, bill)]
    book = world.csms.books[world.id_token]
    assert book.newest.amount == bill and book.terms.nonce == redeemed[0][1].nonce  # the chain's view moved on
    assert "tx-1" not in world.csms.sessions  # paid in full and redeemed: forgotten


@pytest.mark.parametrize("version", ["2.0.1", "1.6"])
def test_csms_starts_a_session_remotely_and_reads_variables_from_a_task(version):
    cls, subprotocol = (Remote201, "ocpp2.0.1") if version == "2.0.1" else (Remote16, "ocpp1.6")

    async def scenario():
        async with World() as world:
            ws, station, loop = await _station(world, cls, subprotocol)
            await until(lambda: "CP-1" in world.csms.points)
            start = asyncio.create_task(world.csms.request_start("CP-1", world.id_token, 2))
            names = [("OCPPCommCtrlr", "HeartbeatInterval"), ("Nope", "Nope")]
            variables = asyncio.create_task(world.csms.get_variables("CP-1", names))
            # Both calls wait on the charger, and meanwhile the charger's own calls are answered.
            if version == "2.0.1":
                await station.call(call201.Heartbeat())
            else:
                await station.call(call16.Heartbeat())
            results = await asyncio.wait_for(asyncio.gather(start, variables), GUARD_S)
            if version == "2.0.1":  # the charger starts the session it was asked for
                started = event("Started", 0, 500, 0, world.id_token)
                started.transaction_info["remote_start_id"] = station.starts[0]["remote_start_id"]
                answer = await station.call(started)
                assert answer.id_token_info["status"] == "Accepted" and "tx-1" in world.csms.sessions
            loop.cancel()
            return world, station, results

    world, station, (status, variables) = asyncio.run(scenario())
    assert status == "Accepted"
    assert variables == {"OCPPCommCtrlr.HeartbeatInterval": "300", "Nope.Nope": None}
    if version == "2.0.1":
        assert station.starts == [{"id_token": {"id_token": world.id_token, "type": "Central"}, "remote_start_id": 1,
                                   "evse_id": 2}]
    else:
        assert station.starts == [{"id_tag": world.id_token, "connector_id": 2}]


def test_remote_start_refuses_unknown_vehicles_and_chargers():
    async def scenario():
        async with World() as world:
            with pytest.raises(ValueError, match="charger_id"):
                await world.csms.request_start("CP-404", world.id_token)
            ws, station, loop = await _station(world, Remote201)
            await until(lambda: "CP-1" in world.csms.points)
            with pytest.raises(ValueError, match="id_token"):
                await world.csms.request_start("CP-1", "0" * 20)
            loop.cancel()
            return station.starts

    assert asyncio.run(scenario()) == []


def test_store_restores_sessions_vouchers_seqno_and_transaction_ids(tmp_path):
    """In process: a CSMS abandoned without stopping (nothing flushed at stop) and a new one on the same file."""
    vehicle_key, operator = PrivateKey.generate(SCHEME_P256), PrivateKey.generate()

    async def first():
        async with World(vehicle_key=vehicle_key, operator_key=operator) as world:
            world.csms.store = CsmsStore(tmp_path / "csms.sqlite")
            world.csms.authorize_vehicle(world.terms)
            world.csms.persist_book(world.id_token)
            async with world.vehicle():
                ws, station, loop = await _station(world, Station201)
                await station.call(event("Started", 0, 1_000, 0, world.id_token))
                await station.call(updated(1, 2_000, 5))
                await until(world.owed_is_paid)
                loop.cancel()
                tx16 = world.csms.next_transaction_id()
                return world.id_token, world.csms.books[world.id_token].newest, tx16

    token, newest, tx16 = asyncio.run(first())
    restored = Csms(ChargerRegistry(), TARIFF, operator, store=CsmsStore(tmp_path / "csms.sqlite"))
    assert newest is not None and restored.books[token].newest == newest
    assert restored.next_transaction_id() == tx16 + 1
    session = restored.sessions["tx-1"]
    assert (session.seq_no, session.energy_wh, session.id_token, session.ended) == (1, 1_000, token, False)
    assert restored.current[token] == "tx-1"


def test_store_levels_and_a_bad_level(tmp_path):
    full = CsmsStore(tmp_path / "full.sqlite", "full")
    assert full.secret() == full.secret() and len(full.secret()) == 32
    full.save_transaction_id(41)
    full.close()
    assert CsmsStore(tmp_path / "full.sqlite").next_transaction_id() == 41
    assert oct((tmp_path / "full.sqlite").stat().st_mode & 0o777) == "0o600"
    with pytest.raises(ValueError, match="store_sync"):
        CsmsStore(tmp_path / "other.sqlite", "sometimes")


@pytest.mark.slow
def test_csms_killed_mid_session_settles_it_after_restart(tmp_path):
    vehicle_key = PrivateKey.generate(SCHEME_P256)
    password = ChargerRegistry(tmp_path / "chargers.json").add_charger("CP-1", "operator-address")

    def launch():
        process = subprocess.Popen([sys.executable, str(DRIVER), str(tmp_path), vehicle_key.seed.hex(), "7"],
                                   stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        port, token = process.stdout.readline().split()
        return process, int(port), token

    async def session_part(port, token, nonce, events, wait_receipt=False, replayed=-1):
        world = World.__new__(World)
        world.port, world.password = port, password
        async with Vehicle(world.base, token, vehicle_key, "city-test", 7, nonce=nonce) as vehicle:
            ws, station, loop = await _station(world, Station201)
            for message in events:
                costs = len(vehicle.costs)
                await station.call(message, suppress=False)
                if message.seq_no <= replayed:
                    continue  # a replay: acknowledged, no new cost
                # Killed only once the voucher for this event's cost was accepted (so: on disk).
                await until(lambda: len(vehicle.costs) > costs and vehicle.accepted
                            and vehicle.accepted[-1] == vehicle.costs[-1]["owed_micro"])
            receipt = await asyncio.wait_for(vehicle.receipts.get(), GUARD_S) if wait_receipt else None
            loop.cancel()
            return vehicle.nonce, receipt

    process, port, token = launch()
    try:
        nonce, _ = asyncio.run(session_part(port, token, 0, [event("Started", 0, 1_000, 0, token),
                                                            updated(1, 3_000, 10)]))
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(GUARD_S)
    process, port, again = launch()
    try:
        assert again == token
        nonce, receipt = asyncio.run(session_part(port, token, nonce, [updated(1, 3_000, 10, True),
                                                                       updated(2, 4_000, 15, True),
                                                                       ended(3, 4_400, 20)], wait_receipt=True,
                                                  replayed=1))
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(GUARD_S)
    assert receipt.cost_micro == compute_cost_micro(TARIFF, 3_400, 20 * 60) and receipt.verify()
    store = CsmsStore(tmp_path / "csms.sqlite")
    books, sessions = store.load()
    assert books[token].newest.amount == receipt.cost_micro and sessions["tx-1"].ended
