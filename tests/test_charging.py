"""The CSMS over real WebSockets, with charge points built from the ocpp package's charge-point side.

Each test runs its own CSMS on a free loopback port. Timeouts below only keep a broken test from
hanging; no assertion depends on time.
"""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from ocpp.exceptions import OCPPError
from ocpp.routing import on
from ocpp.v16 import ChargePoint as Cp16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint as Cp201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from helpers import CHAIN_ID, make_chain
from cityledger import sdk
from cityledger.core.keys import SCHEME_P256, PrivateKey
from cityledger.modules.bank import get_balance
from cityledger.modules.payments.handlers import get_counter
from cityledger.modules.payments.keys import NEXT_CHANNEL_ID_KEY
from cityledger.modules.payments.vouchers import sign_voucher, verify_voucher
from cityledger.offchain.charging import (
    AccountingError,
    ChannelTerms,
    ChargerRegistry,
    Csms,
    Tariff,
    VehicleClient,
    Voucher,
    VoucherBook,
    compute_cost_micro,
)
from cityledger.offchain.charging.vehicle_protocol import compute_hello_bytes

CHAIN = "city-test"
TARIFF = Tariff(per_kwh_micro=300_000, per_minute_micro=10_000, per_session_micro=50_000)
T0 = datetime(2026, 1, 1, 10, 0, tzinfo=timezone.utc)
GUARD_S = 10  # only to keep a broken test from hanging


def at(minutes: int) -> str:
    """An OCPP timestamp `minutes` after T0."""
    return (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


class Station201(Cp201):
    """A 2.0.1 charge point that records what the CSMS asks of it."""

    def __init__(self, *args):
        super().__init__(*args)
        self.costs: list[Decimal] = []
        self.stops: asyncio.Queue[str] = asyncio.Queue()

    @on("CostUpdated")
    def on_cost_updated(self, total_cost, transaction_id, **_):
        self.costs.append(total_cost)
        return result201.CostUpdated()

    @on("RequestStopTransaction")
    def on_request_stop(self, transaction_id, **_):
        self.stops.put_nowait(transaction_id)
        return result201.RequestStopTransaction(status="Accepted")


class Station16(Cp16):
    """A 1.6-J charge point that records remote stops."""

    def __init__(self, *args):
        super().__init__(*args)
        self.stops: asyncio.Queue[int] = asyncio.Queue()

    @on("RemoteStopTransaction")
    def on_remote_stop(self, transaction_id, **_):
        self.stops.put_nowait(transaction_id)
        return result16.RemoteStopTransaction(status="Accepted")


def basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def until(condition) -> None:
    """Wait for a condition another task makes true (bounded only by the guard)."""
    async with asyncio.timeout(GUARD_S):
        while not condition():
            await asyncio.sleep(0.005)


class World:
    """A CSMS with one registered charger and one vehicle whose channel has `deposit`."""

    def __init__(self, margin_micro: int = 2_000_000, deposit: int = 50_000_000, vehicle_key=None,
                 operator_key=None, chain_id: str = CHAIN, channel_id: int = 7) -> None:
        self.registry = ChargerRegistry()
        self.password = self.registry.add_charger("CP-1", "operator-address")
        self.csms = Csms(self.registry, TARIFF, operator_key or PrivateKey.generate(), margin_micro=margin_micro)
        self.vehicle_key = vehicle_key or PrivateKey.generate(SCHEME_P256)
        self.terms = ChannelTerms(chain_id, channel_id, self.vehicle_key.public_key, deposit)
        self.id_token = self.csms.authorize_vehicle(self.terms)
        self.port = 0

    async def __aenter__(self) -> "World":
        self.port = await self.csms.start("127.0.0.1", 0)
        return self

    async def __aexit__(self, *_) -> None:
        await self.csms.stop()

    @property
    def base(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def vehicle(self, pay: bool = True) -> VehicleClient:
        return VehicleClient(self.base, self.id_token, self.vehicle_key, self.terms.chain_id, self.terms.channel_id,
                             pay=pay)

    def charger(self, cls, subprotocol: str, password: str | None = None, charger_id: str = "CP-1"):
        return connect(f"{self.base}/ocpp/{charger_id}", subprotocols=[subprotocol],
                       additional_headers=basic(charger_id, password or self.password))

    def owed_is_paid(self) -> bool:
        sessions = [s for s in self.csms.sessions.values() if s.id_token == self.id_token]
        return bool(sessions) and all(self.csms.unpaid_micro(s) == 0 for s in sessions)


def energy(wh: int, minutes: int) -> list[dict]:
    return [{"timestamp": at(minutes), "sampled_value": [
        {"value": wh, "measurand": "Energy.Active.Import.Register", "unit_of_measure": {"unit": "Wh"}}]}]


def event(kind: str, seq: int, wh: int, minutes: int, token: str | None = None):
    return call201.TransactionEvent(
        event_type=kind, timestamp=at(minutes), trigger_reason="MeterValuePeriodic" if kind == "Updated" else
        "Authorized", seq_no=seq, transaction_info={"transaction_id": "tx-1"}, meter_value=energy(wh, minutes),
        id_token={"id_token": token, "type": "Central"} if token else None, evse={"id": 1, "connector_id": 1})


def test_tariff_is_integer_and_floored_per_term():
    assert compute_cost_micro(TARIFF, 0, 0) == 50_000
    assert compute_cost_micro(TARIFF, 1, 59) == 50_000 + 300 + 9_833
    assert compute_cost_micro(TARIFF, 12_345, 600) == 50_000 + 3_703_500 + 100_000
    with pytest.raises(ValueError, match="per_kwh_micro"):
        Tariff(per_kwh_micro=1.5)
    with pytest.raises(ValueError, match="energy_wh"):
        compute_cost_micro(TARIFF, -1, 0)


def test_invalid_vouchers_are_refused_and_change_nothing():
    key, other = PrivateKey.generate(), PrivateKey.generate()
    book = VoucherBook(ChannelTerms(CHAIN, 3, key.public_key, deposit=1_000))
    good = Voucher(3, 500, 2, sign_voucher(key, CHAIN, 3, 500, 2))
    book.accept(good, owed_micro=600)
    cases = {
        "channel_id": Voucher(4, 600, 3, sign_voucher(key, CHAIN, 4, 600, 3)),
        "nonce": Voucher(3, 600, 2, sign_voucher(key, CHAIN, 3, 600, 2)),
        "amount": Voucher(3, 700, 3, sign_voucher(key, CHAIN, 3, 700, 3)),  # more than owed
        "signature": Voucher(3, 600, 3, sign_voucher(other, CHAIN, 3, 600, 3)),
    }
    for field, voucher in cases.items():
        with pytest.raises(AccountingError, match=field):
            book.accept(voucher, owed_micro=600)
        assert book.newest == good
    with pytest.raises(AccountingError, match="signature"):  # another chain's voucher
        book.accept(Voucher(3, 600, 3, sign_voucher(key, "other-chain", 3, 600, 3)), owed_micro=600)


def test_session_over_ocpp201_is_billed_paid_and_receipted():
    async def scenario():
        async with World() as world, world.vehicle() as vehicle, \
                world.charger(Station201, "ocpp2.0.1") as ws:
            assert ws.subprotocol == "ocpp2.0.1"
            station = Station201("CP-1", ws)
            loop = asyncio.create_task(station.start())
            boot = await station.call(call201.BootNotification(
                charging_station={"model": "M1", "vendor_name": "V"}, reason="PowerUp"))
            assert boot.status == "Accepted"
            await station.call(call201.Heartbeat())
            await station.call(call201.StatusNotification(timestamp=at(0), connector_status="Occupied",
                                                           evse_id=1, connector_id=1))
            auth = await station.call(call201.Authorize(id_token={"id_token": world.id_token, "type": "Central"}))
            assert auth.id_token_info["status"] == "Accepted"
            started = await station.call(event("Started", 0, 10_000, 0, world.id_token))
            assert started.id_token_info["status"] == "Accepted"
            updated = []
            for seq, (wh, minute) in enumerate([(12_000, 5), (15_500, 10), (18_250, 15)], start=1):
                updated.append(await station.call(event("Updated", seq, wh, minute)))
                await until(world.owed_is_paid)
            ended = await station.call(event("Ended", 4, 20_001, 20))
            receipt = await asyncio.wait_for(vehicle.receipts.get(), GUARD_S)
            await until(lambda: len(station.costs) == 1)
            loop.cancel()
            return world, station, ended, receipt, updated

    world, station, ended, receipt, updated = asyncio.run(scenario())
    # The cost at the start (the session fee) comes in a CostUpdated, every running cost in the answer.
    assert station.costs == [float(Decimal(compute_cost_micro(TARIFF, 0, 0)) / 1_000_000)]
    assert [answer.total_cost for answer in updated] == [
        float(Decimal(compute_cost_micro(TARIFF, wh - 10_000, minute * 60)) / 1_000_000)
        for wh, minute in [(12_000, 5), (15_500, 10), (18_250, 15)]]
    bill = compute_cost_micro(TARIFF, 20_001 - 10_000, 20 * 60)
    assert receipt.cost_micro == bill and receipt.energy_wh == 10_001 and receipt.verify()
    assert ended.total_cost == float(Decimal(bill) / 1_000_000)
    final = world.csms.final_voucher("tx-1")
    assert final.amount == bill
    assert verify_voucher(world.terms.voucher_key, CHAIN, 7, final.amount, final.nonce, final.signature)
    assert receipt.voucher_hash == final.digest(CHAIN)
    assert station.stops.empty()


def test_operator_redeems_exactly_the_bill_with_two_txs_on_chain(tmp_path):
    """A real channel on an in-process chain: open, one session over OCPP 2.0.1, close with the final voucher."""
    chain = make_chain(tmp_path)
    vehicle, operator = chain.accounts[0], chain.accounts[1]
    deposit = 40_000_000
    txs = [sdk.open_channel(CHAIN_ID, vehicle, 0, operator.address(), deposit, 10)]
    assert chain.block(txs[0]).tx_results[0].code == 0
    channel_id = get_counter(chain.store, NEXT_CHANNEL_ID_KEY)
    before = {key: get_balance(chain.store, key.address()) for key in (vehicle, operator)}

    async def scenario():
        async with World(vehicle_key=vehicle, operator_key=operator, chain_id=CHAIN_ID, channel_id=channel_id,
                         deposit=deposit) as world, world.vehicle() as client, \
                world.charger(Station201, "ocpp2.0.1") as ws:
            station = Station201("CP-1", ws)
            loop = asyncio.create_task(station.start())
            await station.call(event("Started", 0, 100_000, 0, world.id_token))
            for seq, (wh, minute) in enumerate([(103_000, 10), (107_777, 20)], start=1):
                await station.call(event("Updated", seq, wh, minute))
                await until(world.owed_is_paid)
            await station.call(event("Ended", 3, 109_999, 31))
            receipt = await asyncio.wait_for(client.receipts.get(), GUARD_S)
            loop.cancel()
            return world.csms.final_voucher("tx-1"), receipt

    final, receipt = asyncio.run(scenario())
    bill = compute_cost_micro(TARIFF, 9_999, 31 * 60)
    assert receipt.cost_micro == final.amount == bill and receipt.verify()
    voucher = sdk.Voucher(CHAIN_ID, final.channel_id, final.amount, final.nonce, final.signature)
    txs.append(sdk.close_channel(CHAIN_ID, operator, 0, channel_id, voucher))
    assert chain.block(txs[1]).tx_results[0].code == 0
    assert get_balance(chain.store, operator.address()) == before[operator] + bill
    assert get_balance(chain.store, vehicle.address()) == before[vehicle] + deposit - bill
    # These two txs (the channel's open and its close) are all the ledger saw of the session: the
    # balances above settled from them alone, with no reading or session time on chain.
    chain.app.check_invariants()


def test_session_over_ocpp16_is_billed_paid_and_receipted():
    async def scenario():
        async with World() as world, world.vehicle() as vehicle, world.charger(Station16, "ocpp1.6") as ws:
            assert ws.subprotocol == "ocpp1.6"
            station = Station16("CP-1", ws)
            loop = asyncio.create_task(station.start())
            boot = await station.call(call16.BootNotification(charge_point_model="M", charge_point_vendor="V"))
            assert boot.status == "Accepted"
            await station.call(call16.StatusNotification(connector_id=1, error_code="NoError", status="Preparing"))
            auth = await station.call(call16.Authorize(id_tag=world.id_token))
            assert auth.id_tag_info["status"] == "Accepted"
            start = await station.call(call16.StartTransaction(connector_id=1, id_tag=world.id_token,
                                                               meter_start=1_000, timestamp=at(0)))
            assert start.id_tag_info["status"] == "Accepted"
            for wh, minute in [(2_500, 4), (4_000, 8)]:
                await station.call(call16.MeterValues(connector_id=1, transaction_id=start.transaction_id,
                                                      meter_value=[{"timestamp": at(minute), "sampled_value": [
                                                          {"value": str(wh / 1000), "unit": "kWh"}]}]))
                await until(world.owed_is_paid)
            await station.call(call16.StopTransaction(meter_stop=5_432, timestamp=at(11),
                                                      transaction_id=start.transaction_id))
            receipt = await asyncio.wait_for(vehicle.receipts.get(), GUARD_S)
            loop.cancel()
            return world, receipt, str(start.transaction_id)

    world, receipt, session_id = asyncio.run(scenario())
    bill = compute_cost_micro(TARIFF, 5_432 - 1_000, 11 * 60)
    assert receipt.cost_micro == bill and receipt.session_id == session_id and receipt.verify()
    assert world.csms.final_voucher(session_id).amount == bill


@pytest.mark.parametrize("version", ["2.0.1", "1.6"])
def test_vehicle_that_falls_behind_is_stopped(version):
    async def scenario():
        async with World(margin_micro=200_000) as world, world.vehicle(pay=False):
            if version == "2.0.1":
                async with world.charger(Station201, "ocpp2.0.1") as ws:
                    station = Station201("CP-1", ws)
                    loop = asyncio.create_task(station.start())
                    await station.call(event("Started", 0, 0, 0, world.id_token))
                    await station.call(event("Updated", 1, 1_000, 1))
                    stopped = await asyncio.wait_for(station.stops.get(), GUARD_S)
                    loop.cancel()
                    return stopped, "tx-1"
            async with world.charger(Station16, "ocpp1.6") as ws:
                station = Station16("CP-1", ws)
                loop = asyncio.create_task(station.start())
                start = await station.call(call16.StartTransaction(connector_id=1, id_tag=world.id_token,
                                                                   meter_start=0, timestamp=at(0)))
                await station.call(call16.MeterValues(connector_id=1, transaction_id=start.transaction_id,
                                                      meter_value=[{"timestamp": at(1), "sampled_value": [
                                                          {"value": "1000"}]}]))
                stopped = await asyncio.wait_for(station.stops.get(), GUARD_S)
                loop.cancel()
                return stopped, start.transaction_id

    stopped, expected = asyncio.run(scenario())
    assert stopped == expected


def test_meter_going_backwards_is_refused_and_changes_nothing():
    async def scenario():
        async with World() as world, world.vehicle(), world.charger(Station201, "ocpp2.0.1") as ws:
            station = Station201("CP-1", ws)
            loop = asyncio.create_task(station.start())
            await station.call(event("Started", 0, 5_000, 0, world.id_token))
            await station.call(event("Updated", 1, 6_000, 1))
            with pytest.raises(OCPPError, match="backwards"):
                await station.call(event("Updated", 2, 5_500, 2), suppress=False)
            session = world.csms.sessions["tx-1"]
            assert (session.meter_wh, session.energy_wh) == (6_000, 1_000)
            await station.call(event("Updated", 3, 7_000, 3))  # the CSMS goes on
            loop.cancel()
            return session.energy_wh

    assert asyncio.run(scenario()) == 2_000


def test_schema_invalid_and_malformed_frames_get_callerrors_and_the_csms_goes_on():
    async def scenario():
        async with World() as world, world.charger(None, "ocpp2.0.1") as ws:
            await ws.send(json.dumps([2, "bad-1", "BootNotification", {"reason": "PowerUp"}]))
            missing = json.loads(await ws.recv())
            await ws.send(json.dumps([2, "bad-2", "Heartbeat", {"extra": 1}]))
            extra = json.loads(await ws.recv())
            await ws.send("this is not json")
            await ws.send(json.dumps([2]))
            await ws.send(json.dumps([2, "bad-4", "Heartbeat", "not an object"]))
            odd = json.loads(await ws.recv())
            await ws.send(json.dumps([2, "bad-3", "NoSuchAction", {}]))
            unknown = json.loads(await ws.recv())
            await ws.send(json.dumps([2, "ok-1", "Heartbeat", {}]))
            fine = json.loads(await ws.recv())
            return missing, extra, odd, unknown, fine

    missing, extra, odd, unknown, fine = asyncio.run(scenario())
    assert missing[:3] == [4, "bad-1", "ProtocolError"]  # the ocpp package's code for a missing field
    assert extra[:3] == [4, "bad-2", "FormatViolation"]
    assert odd[:2] == [4, "bad-4"]
    assert unknown[:3] == [4, "bad-3", "NotSupported"]
    assert fine[:2] == [3, "ok-1"] and "currentTime" in fine[2]


def test_handshake_refuses_unknown_charger_wrong_password_and_missing_subprotocol():
    async def status_of(world, **kwargs):
        try:
            async with world.charger(None, **kwargs):
                return 101
        except InvalidStatus as refused:
            return refused.response.status_code

    async def scenario():
        async with World() as world:
            unknown = await status_of(world, subprotocol="ocpp2.0.1", charger_id="CP-404", password="x")
            wrong = await status_of(world, subprotocol="ocpp2.0.1", password="not-the-password")
            no_protocol = await status_of(world, subprotocol="ocpp0.9")
            right = await status_of(world, subprotocol="ocpp1.6")
            return unknown, wrong, no_protocol, right, world.csms.points

    unknown, wrong, no_protocol, right, points = asyncio.run(scenario())
    assert (unknown, wrong, no_protocol, right) == (401, 401, 400, 101)
    assert points == {}


def test_registry_keeps_only_salted_hashes_and_refuses_bad_ids(tmp_path):
    path = tmp_path / "chargers.json"
    registry = ChargerRegistry(path)
    password = registry.add_charger("CP-9", "owner")
    assert password not in path.read_text()
    reloaded = ChargerRegistry(path)
    assert reloaded.is_valid_login("CP-9", password)
    assert not reloaded.is_valid_login("CP-9", password + "x") and not reloaded.is_valid_login("CP-8", password)
    for bad in ["", "a/b", "x" * 49]:
        with pytest.raises(ValueError, match="charger_id"):
            registry.add_charger(bad, "owner")
    assert ChargerRegistry(path).get("CP-9") is not None and len(json.loads(path.read_text())) == 1


def test_vehicle_endpoint_refuses_impostors_and_forged_vouchers():
    async def hello(world, key):
        ws = await connect(f"{world.base}/vehicle/{world.id_token}")
        nonce = bytes.fromhex(json.loads(await ws.recv())["nonce"])
        await ws.send(json.dumps({"type": "hello",
                                  "signature": key.sign(compute_hello_bytes(world.id_token, nonce)).hex()}))
        return ws

    def frame(key, amount, nonce, channel_id=7):
        return json.dumps({"type": "voucher", "channel_id": channel_id, "amount": amount, "nonce": nonce,
                           "signature": sign_voucher(key, CHAIN, channel_id, amount, nonce).hex()})

    async def scenario():
        async with World() as world, world.charger(Station201, "ocpp2.0.1") as charger:
            with pytest.raises(InvalidStatus):
                async with connect(f"{world.base}/vehicle/{'0' * 20}"):
                    pass
            impostor = await hello(world, PrivateKey.generate(SCHEME_P256))
            with pytest.raises(ConnectionClosed):
                await impostor.recv()
            station = Station201("CP-1", charger)
            loop = asyncio.create_task(station.start())
            await station.call(event("Started", 0, 0, 0, world.id_token))
            vehicle = await hello(world, world.vehicle_key)
            cost = json.loads(await vehicle.recv())
            answers = []
            for bad in [frame(PrivateKey.generate(SCHEME_P256), cost["owed_micro"], 1),
                        frame(world.vehicle_key, cost["owed_micro"] + 1, 1),
                        frame(world.vehicle_key, cost["owed_micro"], 1, channel_id=8),
                        "not json", json.dumps({"type": "voucher", "amount": "x"}),
                        frame(world.vehicle_key, cost["owed_micro"], 1)]:
                await vehicle.send(bad)
                answers.append(json.loads(await vehicle.recv()))
            loop.cancel()
            await vehicle.close()
            return cost, answers

    cost, answers = asyncio.run(scenario())
    assert [a["type"] for a in answers] == ["refused"] * 5 + ["accepted"]
    assert ["signature" in answers[0]["error"], "amount" in answers[1]["error"], "channel_id" in answers[2]["error"],
            "voucher" in answers[4]["error"]] == [True] * 4
    assert answers[5]["amount"] == cost["owed_micro"] == TARIFF.per_session_micro


def test_charger_that_reconnects_mid_session_settles_on_the_new_connection():
    async def scenario():
        async with World() as world, world.vehicle() as vehicle:
            async with world.charger(Station201, "ocpp2.0.1") as first:
                station = Station201("CP-1", first)
                loop = asyncio.create_task(station.start())
                await station.call(event("Started", 0, 1_000, 0, world.id_token))
                await station.call(event("Updated", 1, 2_000, 5))
                await until(world.owed_is_paid)
                async with world.charger(Station201, "ocpp2.0.1") as second:
                    with pytest.raises(ConnectionClosed):  # the CSMS dropped the older link
                        await asyncio.wait_for(loop, GUARD_S)
                    station = Station201("CP-1", second)
                    loop = asyncio.create_task(station.start())
                    await station.call(event("Updated", 2, 3_500, 10))
                    await until(world.owed_is_paid)
                    await station.call(event("Ended", 3, 4_000, 12))
                    receipt = await asyncio.wait_for(vehicle.receipts.get(), GUARD_S)
                    loop.cancel()
                    return receipt

    receipt = asyncio.run(scenario())
    assert receipt.cost_micro == compute_cost_micro(TARIFF, 3_000, 12 * 60)
