"""`cityledger charging simulate`: complete charging sessions against a running node's CSMS.

Each simulated vehicle is set up as a real one: a device key registered by the car maker, bound to a
pseudonymous owner account of its wallet, a vehicle-registration credential from the node's hosted
transport office, its owner's spending policy allowing the operator, funds, and a channel it opens
from its own account; then it authorises at the CSMS's `/authorize` (device DID + credential) and
gets its idToken. The set-up is slow (an AnonCreds credential per vehicle) and done once: what the
node holds is remembered in the home's charging/simulate/fleet.json (mode 600) and reused by later
runs. Chargers are ocpp-package charge points (tools/sim_charging.py) registered in the home's
charger registry, which the running CSMS rereads at their first login. Sessions run through real
WebSockets; the node's CSMS redeems the final vouchers by itself (offchain/charging/redeem.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import ssl
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

from .. import sdk
from ..core.keys import SCHEME_P256, PrivateKey
from ..core.types import address_to_str
from ..modules.devices import BindDevice, compute_device_did
from ..modules.identity import compute_did
from ..node.charging import open_registry
from ..node.keyfiles import load_key, write_key_file
from ..offchain.identity import VEHICLE_REGISTRATION
from ..offchain.identity.devices import build_registration, prove_ownership
from .sim_charging import (GUARD_S, SETTLE_DELAY_BLOCKS, ChargerLink, Progress, SimVehicle, close_charger,
                           connect_charger, count_txs, drive_session)

__all__ = ["FleetBuilder", "count_txs", "drive", "office_token", "register_chargers", "session_bound_micro",
           "summarize"]

SIM_DIR = "charging/simulate"  # under the home: the fleet cache, vehicle keys, wallets
REDEEM_WAIT_S = 120  # how long the summary waits for the CSMS's redeems to reach the chain
WH_STEP = (200, 1_500)  # Wh a reading adds (random in this range)
METER_START_WH = (20_000_000, 99_000_000)  # a charger's lifetime register at a session's start
OFFICE = "issuers/transport-office"  # the hosted office that issues vehicle registrations
SESSION_AGE_S = (86_400, 7 * 86_400)  # how long ago a simulated session started (a past week's replay)
POLICY_CAP_MICRO = 10**12  # a simulated vehicle's daily and per-operator cap (the car maker's whole genesis share)
POLICY_BLOCKS = 5_000_000  # how long a simulated vehicle's spending policy lasts (the chain allows 10 million)
PUBLISH_TIMEOUT_S = 1_800  # publishing the registration type creates a revocation registry (minutes at city size)


@dataclass
class Fleet:
    """What the node already holds for the simulated vehicles (the home's charging/simulate/fleet.json)."""

    path: Path
    passphrase: str
    vehicles: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def load(cls, home: Path) -> "Fleet":
        """The cached fleet, or a new empty one (its wallets' passphrase made here, for simulated vehicles only)."""
        path = home / SIM_DIR / "fleet.json"
        if path.exists():
            data = json.loads(path.read_text())
            return cls(path, data["passphrase"], data["vehicles"])
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        return cls(path, os.urandom(16).hex())

    def save(self) -> None:
        """Write the cache atomically, mode 600."""
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"passphrase": self.passphrase, "vehicles": self.vehicles}, indent=1))
        os.chmod(temporary, 0o600)
        temporary.replace(self.path)


@dataclass
class ReadyVehicle:
    """A vehicle set up and authorised: what a session needs."""

    name: str
    key: PrivateKey
    token: str
    channel_id: int
    nonce: int  # its newest voucher nonce
    record: dict[str, Any]


class FleetBuilder:
    """Sets up simulated vehicles on a running node, step by step, remembering each step done."""

    def __init__(self, home: Path, client: sdk.IdentityClient, office_client: sdk.IdentityClient, csms_url: str,
                 operator: str, deposit: int, say: Callable[[str], None], ca_file: Path | None = None) -> None:
        self.home, self.client, self.office, self.csms_url, self.operator, self.deposit, self.say = \
            home, client, office_client, csms_url, operator, deposit, say
        self.ca_file = ca_file  # a wss:// CSMS: the city charging CA it must be certified by
        self.chain_id = client.status().chain_id
        self.fleet = Fleet.load(home)
        self.maker = load_key(home / "keys" / "car-maker.json")
        self.office_did = compute_did(load_key(home / OFFICE / "key.json").signer(), b"")

    def publish(self) -> None:
        """Publish the vehicle-registration type at the transport office, unless done already."""
        if VEHICLE_REGISTRATION in self.office.get_issuer(self.office_did)["published"]:
            return
        self.say("publishing vehicle-registration at the transport office (once; minutes at the city's size)")
        self.office.publish(self.office_did, VEHICLE_REGISTRATION, timeout_s=PUBLISH_TIMEOUT_S)

    def vehicles(self, count: int, need_micro: int = 0) -> list[ReadyVehicle]:
        """The first `count` simulated vehicles, set up and authorised, each channel with `need_micro` left."""
        while len(self.fleet.vehicles) < count:
            self.fleet.vehicles.append({"name": f"sim-car-{len(self.fleet.vehicles)}", "steps": [],
                                        "channel_id": 0, "nonce": 0})
        return [self.vehicle(record, need_micro) for record in self.fleet.vehicles[:count]]

    def vehicle(self, record: dict[str, Any], need_micro: int = 0) -> ReadyVehicle:
        """Set one vehicle up (the steps not yet done), then authorise it at the CSMS."""
        key_path = self.home / SIM_DIR / "keys" / f"{record['name']}.json"
        if not key_path.exists():
            key_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_key_file(key_path, PrivateKey.generate(SCHEME_P256), record["name"])
        key = load_key(key_path)
        did = compute_device_did(key.public_key)
        wallet_path = self.home / SIM_DIR / "wallets" / f"{record['name']}.wallet"
        wallet_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        wallet = self.client.open_wallet(wallet_path, self.fleet.passphrase, create=True,
                                         tails_cache=wallet_path.parent / "tails-cache")
        owner = wallet.account("vehicle", 0)
        steps = {
            "registered": lambda: self._send([self.maker], [build_registration(
                self.chain_id, "vehicle", "SimCar-1", key, self.maker_did(), self.maker)]),
            "credential": lambda: self.client.obtain_credential(wallet, self.office.create_offer(
                self.office_did, VEHICLE_REGISTRATION, {"device_did": did, "owner_account": address_to_str(
                    owner.address()), "registered_on": int(datetime.now(timezone.utc).strftime("%Y%m%d"))},
                f"SIM-{did[-24:]}")),
            "bound": lambda: self._send([owner], [BindDevice(did, prove_ownership(
                wallet, self.client.ledger, self.chain_id, did, owner))]),
            "policy": lambda: self._submit(owner, lambda nonce: sdk.set_policy(
                self.chain_id, owner, nonce, did, daily_cap=POLICY_CAP_MICRO, counterparty_cap=POLICY_CAP_MICRO,
                expiry_height=self.client.status().height + POLICY_BLOCKS, addresses=(self.operator,))),
        }
        for name, step in steps.items():
            if name not in record["steps"]:
                self.say(f"{record['name']}: {name}")
                step()
                record["steps"].append(name)
                self.fleet.save()
        return self._authorize(record, key, wallet, need_micro)

    def maker_did(self) -> str:
        """The car maker's DID (accredited as a manufacturer in the genesis)."""
        return compute_did(self.maker.signer(), b"")

    def _authorize(self, record: dict[str, Any], key: PrivateKey, wallet: Any, need_micro: int) -> ReadyVehicle:
        """Authorise at the CSMS with the cached channel (opened, or topped up to `need_micro` left, first)."""
        channel = record["channel_id"] or None
        try:
            answer = self._authorize_at_csms(key, wallet, channel)
        except sdk.AuthorizationRefused as refused:
            if refused.field != "channel_id":
                raise
            self.say(f"{record['name']}: opening a channel ({refused})")
            channel = self._open_channel(key)
            answer = self._authorize_at_csms(key, wallet, channel)
        short = need_micro - (answer["deposit"] - answer["covered"])
        if short > 0:  # the CSMS takes the larger deposit up when the vehicle authorises again
            self.say(f"{record['name']}: topping channel {answer['channel_id']} up by {short}")
            self._fund(key, short)
            self._submit(key, lambda nonce: sdk.top_up_channel(self.chain_id, key, nonce, answer["channel_id"], short))
            answer = self._authorize_at_csms(key, wallet, answer["channel_id"])
        record["channel_id"] = answer["channel_id"]
        chain_nonce = self.client.get_channel(answer["channel_id"]).nonce
        record["nonce"] = max(record["nonce"], chain_nonce)
        self.fleet.save()
        return ReadyVehicle(record["name"], key, answer["id_token"], answer["channel_id"], record["nonce"], record)

    def _authorize_at_csms(self, key: PrivateKey, wallet: Any, channel: int | None) -> dict[str, Any]:
        return sdk.authorize_vehicle(self.csms_url, key, wallet, self.client.ledger, self.operator, channel,
                                     ca_file=self.ca_file)

    def _open_channel(self, key: PrivateKey) -> int:
        """Fund the vehicle's account with a deposit and open a channel to the operator from it."""
        self._fund(key, self.deposit)
        result = self._submit(key, lambda nonce: sdk.open_channel(self.chain_id, key, nonce, self.operator,
                                                                   self.deposit, SETTLE_DELAY_BLOCKS))
        for event in result.result.events:
            if event.type == "payments_channel_opened":
                return int(event.get("channel_id"))
        raise RuntimeError("channel_open: the ledger announced no channel")

    def _fund(self, key: PrivateKey, amount: int) -> None:
        """The car maker's genesis account pays the simulated vehicle's account."""
        self._submit(self.maker, lambda nonce: sdk.transfer(self.chain_id, self.maker, nonce, key.address(), amount))

    def _send(self, keys: list[PrivateKey], messages: list) -> Any:
        return self._submit(keys[0], lambda nonce: sdk.sign(self.chain_id, keys, nonce, messages))

    def _submit(self, key: PrivateKey, build: Callable[[int], bytes]) -> Any:
        """Sign with the key's next nonce, submit, wait for the commit; RuntimeError naming a refusal."""
        result = self.client.submit(build(self.client.get_nonce(key.address())), wait=True, timeout_s=GUARD_S)
        if result.result is None or not result.result.ok:
            why = result.status if result.result is None else f"{result.result.codespace}/{result.result.code} " \
                                                               f"{result.result.log}"
            raise RuntimeError(f"tx {result.tx_id}: {why}")
        return result


@dataclass
class Run:
    """What the sessions produced: figures, and every meter reading and time sent (for privacy scans)."""

    progress: Progress = field(default_factory=Progress)
    readings_wh: list[int] = field(default_factory=list)
    times: list[str] = field(default_factory=list)
    seconds: float = 0.0


def session_bound_micro(tariff: Any, readings: int) -> int:
    """The most one simulated session can cost: every reading at the largest step, a minute and ten apart."""
    events = readings + 1
    return (tariff.per_session_micro + tariff.per_kwh_micro * events * WH_STEP[1] // 1000
            + tariff.per_minute_micro * events * 70 // 60 + tariff.per_minute_micro)


def meter_series(rng: random.Random, readings: int, start: datetime) -> list[tuple[int, datetime]]:
    """(Wh, time) of a session's readings + 2 events: a large lifetime register rising, a minute or so apart."""
    wh, at, series = rng.randrange(*METER_START_WH), start, []
    for _ in range(readings + 2):
        series.append((wh, at))
        wh += rng.randrange(*WH_STEP)
        at += timedelta(seconds=rng.randrange(50, 70))
    return series


async def drive(csms_url: str, chain_id: str, chargers: list[tuple[str, str]], vehicles: list[ReadyVehicle],
                sessions: int, readings: int, on_session: Callable[[Progress], None],
                tls: ssl.SSLContext | None = None) -> Run:
    """Connect the chargers and vehicles (wss://: trusting `tls`'s CA), run `sessions` sessions (any free charger)."""
    run, rng = Run(), random.Random()
    links: list[ChargerLink] = [await connect_charger(csms_url, cid, password, tls) for cid, password in chargers]
    free: asyncio.Queue[ChargerLink] = asyncio.Queue()
    for link in links:
        free.put_nowait(link)
    clients = [SimVehicle(csms_url, v.token, v.key, chain_id, v.channel_id, v.nonce, tls=tls) for v in vehicles]
    shares = [sessions // len(vehicles) + (i < sessions % len(vehicles)) for i in range(len(vehicles))]
    tag = os.urandom(4).hex()
    started = time.perf_counter()

    async def lane(index: int) -> None:
        client = clients[index]
        async with client:
            for number in range(shares[index]):
                link = await free.get()
                try:
                    meter = meter_series(rng, readings, _session_start(rng))
                    run.readings_wh += [wh for wh, _ in meter]
                    run.times += [at.isoformat().replace("+00:00", "Z") for _, at in meter]
                    await drive_session(link, client, vehicles[index].token, f"sim-{tag}-{index}-{number}",
                                        readings, run.progress, meter)
                    on_session(run.progress)
                finally:
                    free.put_nowait(link)
            vehicles[index].record["nonce"] = client.nonce

    try:
        await asyncio.gather(*(lane(i) for i in range(len(vehicles))))
    finally:
        run.seconds = time.perf_counter() - started
        for link in links:
            await close_charger(link)
    return run


def office_token(home: Path) -> str:
    """The transport office's operator token (the home's issuer folder)."""
    return (home / OFFICE / "token").read_text().strip()


def _session_start(rng: random.Random) -> datetime:
    """A session's start on the charger's clock: a random moment of the past days (whole seconds)."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    return now - timedelta(seconds=rng.randrange(*SESSION_AGE_S))


def register_chargers(home: Path, count: int, operator: str) -> list[tuple[str, str]]:
    """Register (or give new passwords to) SIM-CP-0 .. SIM-CP-<count-1>; (id, password) each."""
    registry = open_registry(home)
    return [(f"SIM-CP-{i}", registry.add_charger(f"SIM-CP-{i}", operator)) for i in range(count)]


def summarize(client: sdk.Client, operator: str, before_micro: int, first_height: int, run: Run,
              vehicles: list[ReadyVehicle]) -> dict[str, Any]:
    """Wait for the CSMS's redeems to reach the chain, then the run's figures from the chain itself."""
    billed = run.progress.billed_micro
    deadline = time.monotonic() + REDEEM_WAIT_S
    while client.get_account(operator).balance - before_micro < billed and time.monotonic() < deadline:
        time.sleep(0.5)
    gained = client.get_account(operator).balance - before_micro
    last_height = client.status().height
    txs = count_txs(client, first_height + 1, last_height)
    onchain = sum(txs[kind] for kind in ("opens", "top_ups", "redeems", "closes", "other"))
    sessions = run.progress.sessions
    channels = {str(v.channel_id): client.get_channel(v.channel_id) for v in vehicles}
    return {
        "sessions": sessions, "vehicles": len(vehicles), "energy_kwh": run.progress.energy_wh / 1000,
        "billed_micro": billed, "operator_gain_micro": gained, "balanced": gained == billed,
        "onchain_txs": onchain, "onchain": txs, "onchain_txs_per_session": round(onchain / sessions, 3) if sessions
        else 0.0, "seconds": round(run.seconds, 3),
        "sessions_per_s": round(sessions / run.seconds, 2) if run.seconds else 0.0,
        "channels": {cid: {"deposit": c.deposit, "redeemed": c.redeemed, "balance": c.balance}
                     for cid, c in channels.items()},
    }
