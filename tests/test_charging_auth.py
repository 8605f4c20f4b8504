"""A vehicle authorises itself with a CSMS: its device DID, its vehicle-registration credential, its channel.

A real chain in process (identity, devices, payments), a real AnonCreds credential, and the CSMS
over real WebSockets; then a session over OCPP 2.0.1 whose frames are captured to show that no
DID, owner account or name passes through OCPP. Each refusal names the failed check.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from ocpp.v201 import call as call201
from websockets.asyncio.client import connect

from helpers import CHAIN_ID
from test_charging import GUARD_S, T0, TARIFF, World, event, until
from test_charging_recovery import Remote201
from test_devices import Fleet, new_device
from test_identity_fixtures import ALICE, City
from cityledger.core.keys import PrivateKey
from cityledger.core.types import address_to_str
from cityledger.modules.bank import Transfer
from cityledger.modules.devices import compute_device_did, compute_message_bytes
from cityledger.modules.payments import OpenChannel, SetPolicy
from cityledger.modules.payments.handlers import get_counter
from cityledger.modules.payments.keys import NEXT_CHANNEL_ID_KEY
from cityledger.offchain.charging import ChargerRegistry, Csms, Session, VehicleClient, compute_cost_micro
from cityledger.offchain.charging.vehicle_auth import (
    AuthorizationRefused,
    VehicleAuthority,
    authorize,
    compute_authorize_payload,
)
from cityledger.offchain.identity import Verifier, WalletError

DEPOSIT = 20_000_000
pytestmark = pytest.mark.slow  # a city with AnonCreds credentials: tens of seconds


class Garage:
    """A city with a transport office, an operator, and vehicles bound to owners, each with its wallet."""

    def __init__(self, city: City) -> None:
        self.city, self.ledger = city, city.ledger
        self.fleet = Fleet(city)
        self.funder = city.chain.accounts[0]
        self.operator = city.chain.accounts[1]
        self.stranger_operator = city.chain.accounts[2]

    def vehicle(self, seed: int):
        """A registered vehicle bound to a fresh owner: (device key, the wallet holding its registration, owner)."""
        device = new_device(seed)
        self.fleet.register(device).raise_for_error()
        did = compute_device_did(device.public_key)
        wallet = self.city.wallet()
        owner = self.fleet.owner(wallet, did)
        self.fleet.bind(wallet, did, owner).raise_for_error()
        for account in (device, owner):
            self.ledger.send([self.funder], [Transfer(account.address(), 100_000_000)]).raise_for_error()
        payees = sorted([self.operator.address(), self.stranger_operator.address()])
        self.ledger.send([owner], [SetPolicy(did, 10 * DEPOSIT, 10 * DEPOSIT, [], payees, 1_000_000)]).raise_for_error()
        return device, wallet, owner

    def open(self, payer: PrivateKey, payee: bytes, voucher_key=None) -> int:
        message = OpenChannel(payee, DEPOSIT, 5, (voucher_key or payer).public_key)
        self.ledger.send([payer], [message]).raise_for_error()
        return get_counter(self.ledger.store, NEXT_CHANNEL_ID_KEY)

    def csms(self, operator: PrivateKey | None = None, secret: bytes = b"s" * 32, store=None) -> Csms:
        operator = operator or self.operator
        authority = VehicleAuthority(self.ledger, CHAIN_ID, operator.address(), secret, Verifier(self.ledger))
        csms = Csms(ChargerRegistry(), TARIFF, operator, store=store, authority=authority)
        return csms


@pytest.fixture(scope="module")
def garage(tmp_path_factory):
    return Garage(City(tmp_path_factory.mktemp("garage")))


async def _serving(csms: Csms):
    return f"ws://127.0.0.1:{await csms.start('127.0.0.1', 0)}"


def run_authorize(csms: Csms, *args, **kwargs) -> dict:
    async def go():
        base = await _serving(csms)
        try:
            return await asyncio.wait_for(authorize(base, *args, **kwargs), GUARD_S * 3)
        finally:
            await csms.stop()
    return asyncio.run(go())


def test_vehicle_authorises_with_its_did_credential_and_channel_and_gets_a_stable_pseudonym(garage):
    device, wallet, owner = garage.vehicle(0x81)
    channel = garage.open(device, garage.operator.address())
    csms = garage.csms()
    first = run_authorize(csms, device, wallet, garage.ledger, channel)
    assert first["channel_id"] == channel and first["deposit"] == DEPOSIT
    token = first["id_token"]
    assert len(token) <= 36 and token in csms.books and csms.books[token].terms.voucher_key == device.public_key
    did = compute_device_did(device.public_key)
    assert did not in token and did.split(":")[-1][:20] not in token
    again = run_authorize(csms, device, wallet, garage.ledger)  # no channel named: the known one is reused
    assert again["id_token"] == token and again["channel_id"] == channel
    # While a session is open on the channel, the vehicle cannot move to another one.
    csms.sessions["tx-open"] = Session("tx-open", "CP-1", TARIFF, T0, 0, token, 0)
    csms.current[token] = "tx-open"
    second = garage.open(device, garage.operator.address())
    with pytest.raises(AuthorizationRefused, match="session is open") as refused:
        run_authorize(csms, device, wallet, garage.ledger, second)
    assert refused.value.field == "channel_id" and csms.books[token].terms.channel_id == channel
    csms.sessions["tx-open"].ended = True
    assert run_authorize(csms, device, wallet, garage.ledger, second)["channel_id"] == second
    # Another operator (another secret) sees another, unlinkable pseudonym for the same vehicle.
    other_channel = garage.open(device, garage.stranger_operator.address())
    other = run_authorize(garage.csms(garage.stranger_operator, secret=b"t" * 32), device, wallet, garage.ledger,
                          other_channel)
    assert other["id_token"] != token and len(other["id_token"]) == len(token)


def _answer_frames(csms: Csms, build) -> dict:
    """Run /authorize with an answer `build(challenge)` makes by hand; the CSMS's last frame."""
    async def go():
        base = await _serving(csms)
        try:
            async with connect(f"{base}/authorize", max_size=2**20) as ws:
                challenge = json.loads(await ws.recv())
                await ws.send(await asyncio.to_thread(build, challenge))
                return json.loads(await asyncio.wait_for(ws.recv(), GUARD_S * 3))
        finally:
            await csms.stop()
    return asyncio.run(go())


def _signed(device: PrivateKey, did: str, challenge: dict) -> str:
    payload = compute_authorize_payload(challenge["chain_id"], challenge["operator"], bytes.fromhex(challenge["nonce"]))
    return device.sign(compute_message_bytes(did, payload)).hex()


def _frame(did: str, signature: str, presentation: str, channel_id) -> str:
    return json.dumps({"type": "authorize", "device": did, "signature": signature, "presentation": presentation,
                       "channel_id": channel_id})


def test_invalid_authorisations_are_refused_naming_the_check(garage):
    device, wallet, owner = garage.vehicle(0x82)
    did = compute_device_did(device.public_key)
    channel = garage.open(device, garage.operator.address())
    other_device, other_wallet, _ = garage.vehicle(0x83)
    unregistered = new_device(0x84)
    owner_channel = garage.open(owner, garage.operator.address())  # paid by the owner, not the vehicle
    stranger_channel = garage.open(device, garage.stranger_operator.address())
    resident = garage.city.resident(ALICE)
    present = lambda w: (lambda c: w.present(c["request"], garage.ledger))  # noqa: E731
    cases = {
        "device: unregistered": lambda c: _frame(compute_device_did(unregistered.public_key),
                                                 _signed(unregistered, compute_device_did(unregistered.public_key), c),
                                                 present(wallet)(c), channel),
        "signature: wrong key": lambda c: _frame(did, _signed(new_device(0x85), did, c), present(wallet)(c), channel),
        "presentation: absent": lambda c: _frame(did, _signed(device, did, c), "{}", channel),
        "presentation: another vehicle's credential": lambda c: _frame(did, _signed(device, did, c),
                                                                       present(other_wallet)(c), channel),
        "presentation: wrong type": lambda c: _frame(did, _signed(device, did, c), resident.present(
            Verifier(garage.ledger).request("x", "resident-id", reveal=["district"]), garage.ledger), channel),
        "channel_id: paid by the owner": lambda c: _frame(did, _signed(device, did, c), present(wallet)(c),
                                                          owner_channel),
        "channel_id: another payee": lambda c: _frame(did, _signed(device, did, c), present(wallet)(c),
                                                      stranger_channel),
        "channel_id: none known": lambda c: _frame(did, _signed(device, did, c), present(wallet)(c), None),
        "channel_id: missing": lambda c: _frame(did, _signed(device, did, c), present(wallet)(c), 10**9),
    }
    for name, build in cases.items():
        csms = garage.csms()
        answer = _answer_frames(csms, build)
        assert answer["type"] == "refused", name
        assert answer["field"] == name.split(":")[0], (name, answer)
        assert csms.books == {}, name
    with pytest.raises(WalletError, match="no held credential"):  # a wallet without the credential cannot answer
        run_authorize(garage.csms(), device, garage.city.wallet(), garage.ledger, channel)


def test_revoked_registration_is_refused(garage):
    device, wallet, owner = garage.vehicle(0x86)
    did = compute_device_did(device.public_key)
    channel = garage.open(device, garage.operator.address())
    assert run_authorize(garage.csms(), device, wallet, garage.ledger, channel)["type"] == "authorized"
    reference = f"REG-{did}-{address_to_str(owner.address())}"
    garage.city.transport_office().revoke([reference]).raise_for_error()
    with pytest.raises(AuthorizationRefused) as refused:
        run_authorize(garage.csms(), device, wallet, garage.ledger, channel)
    assert refused.value.field == "presentation"


class CapturingStation(Remote201):
    """A 2.0.1 charge point that keeps every OCPP frame it sends and receives."""

    def __init__(self, *args):
        super().__init__(*args)
        self.frames: list[str] = []

    async def _send(self, message):
        self.frames.append(message)
        await super()._send(message)

    async def route_message(self, raw_msg):
        self.frames.append(raw_msg)
        await super().route_message(raw_msg)


def test_authorised_vehicle_charges_and_no_did_owner_or_name_passes_through_ocpp(garage):
    device, wallet, owner = garage.vehicle(0x87)
    did = compute_device_did(device.public_key)
    channel = garage.open(device, garage.operator.address())
    csms = garage.csms()
    password = csms.registry.add_charger("CP-1", "operator")

    async def scenario():
        base = await _serving(csms)
        try:
            world = World.__new__(World)
            world.port, world.password = int(base.rsplit(":", 1)[1]), password
            async with world.charger(None, "ocpp2.0.1") as ws:
                station = CapturingStation("CP-1", ws)
                loop = asyncio.create_task(station.start())
                await until(lambda: "CP-1" in csms.points)
                # The vehicle authorises and asks for a session at CP-1: the CSMS starts it remotely.
                granted = await asyncio.wait_for(authorize(base, device, wallet, garage.ledger, channel,
                                                           charger_id="CP-1", evse_id=1), GUARD_S * 3)
                token = granted["id_token"]
                assert granted["remote_start"] == "Accepted"
                assert station.starts == [{"id_token": {"id_token": token, "type": "Central"}, "remote_start_id": 1,
                                           "evse_id": 1}]
                auth = await station.call(call201.Authorize(id_token={"id_token": token, "type": "Central"}))
                assert auth.id_token_info["status"] == "Accepted"
                started = event("Started", 0, 1_000, 0, token)
                started.transaction_info["remote_start_id"] = 1
                vehicle = await VehicleClient(base, token, device, CHAIN_ID, channel).__aenter__()
                await station.call(started)
                await station.call(event("Updated", 1, 4_000, 10))
                await until(lambda: csms.unpaid_micro(csms.sessions["tx-1"]) == 0)
                await station.call(event("Ended", 2, 6_000, 20))
                receipt = await asyncio.wait_for(vehicle.receipts.get(), GUARD_S)
                await vehicle.__aexit__()
                loop.cancel()
                return token, station.frames, receipt
        finally:
            await csms.stop()

    token, frames, receipt = asyncio.run(scenario())
    assert receipt.cost_micro == compute_cost_micro(TARIFF, 5_000, 20 * 60) and receipt.verify()
    text = "\n".join(frames)
    assert token in text and '"type": "Central"' in text or '"type":"Central"' in text
    forbidden = [did, did.split(":")[-1], address_to_str(owner.address()), owner.address().hex(),
                 address_to_str(device.address()), device.public_key.key.hex(), ALICE["name"], "vehicle-registration"]
    for secret in forbidden:
        assert secret not in text, secret
