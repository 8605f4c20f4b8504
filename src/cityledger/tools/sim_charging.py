"""Complete EV charging sessions over real WebSockets, paid through payment channels on a real chain.

Shared by `cityledger bench charging` (tools/bench_charging.py) and `cityledger charging simulate`:

- the chain side, through the SDK against a node's REST API: fund the vehicles' accounts, open one
  long-lived channel per vehicle to the operator (`channel_open`, the vehicle's own key signs the
  vouchers), read a channel's terms back from the chain, and count what reached the chain;
- `rest_settle`, the operator's side for a CSMS beside a node it reaches over REST: the CSMS's own
  redeem rounds (offchain/charging/redeem.py) hand it each channel's newest voucher once its session
  ended, and it sends one `channel_redeem` per channel, the round's txs as one batch;
- the protocol peers: `SimStation`, an OCPP 2.0.1 charge point built from the `ocpp` package's
  charge-point side, and `SimVehicle`, the vehicle client of offchain/charging/vehicle_protocol.py;
  `drive_charger` runs sessions on one station: Started, `readings` Updated events (1 kWh and one
  minute apart) and Ended, each sent once the vehicle's voucher for the previous cost was answered.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from ocpp.routing import on
from ocpp.v201 import ChargePoint
from ocpp.v201 import call, call_result
from websockets.asyncio.client import connect

from .. import sdk
from ..core.keys import PrivateKey, PublicKey
from ..core.types import address_to_str
from ..offchain.charging import ChannelTerms, VehicleClient, Voucher
from ..offchain.charging.redeem import Settle
from ..offchain.charging.tls import connect_options

WH_PER_READING = 1_000
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
GUARD_S = 60  # only keeps a broken run from hanging: one answer, one commit
SETTLE_DELAY_BLOCKS = 20  # the vehicles' channels' challenge window


# -- the chain side ------------------------------------------------------------------------------

def wait_committed(client: sdk.Client, tx_ids: list[str]) -> list[Any]:
    """Wait until each tx is committed; its result, or RuntimeError naming the first refused one."""
    results = []
    for tx_id in tx_ids:
        status = client.wait(tx_id, GUARD_S)
        if not status.committed or status.result is None or not status.result.ok:
            log = status.result.log if status.result is not None else status.status
            raise RuntimeError(f"tx {tx_id}: not committed ({log})")
        results.append(status)
    return results


def submit_all(client: sdk.Client, txs: list[bytes]) -> list[str]:
    """Submit txs in one batch; their ids, or RuntimeError with the first refusal."""
    batch = client.submit_batch(txs)
    refused = [r for r in batch.results if not r.ok]
    if refused:
        first = refused[0]
        raise RuntimeError(f"{len(refused)} txs refused, first: {first.codespace}/{first.code} {first.log}")
    return [r.tx_id for r in batch.results]


def fund(client: sdk.Client, chain_id: str, funder: PrivateKey, addresses: list[bytes], amount: int) -> None:
    """Give each address `amount` micro-credits from the funder, in one multi-send."""
    nonce = client.get_nonce(funder.address())
    tx = sdk.multi_send(chain_id, funder, nonce, [(address, amount) for address in addresses])
    wait_committed(client, submit_all(client, [tx]))


def open_channels(client: sdk.Client, chain_id: str, vehicles: list[PrivateKey], payee: bytes,
                  deposit: int) -> list[int]:
    """Each vehicle opens a channel to the payee with its own key as voucher key; the channel ids."""
    txs = [sdk.open_channel(chain_id, key, client.get_nonce(key.address()), payee, deposit, SETTLE_DELAY_BLOCKS)
           for key in vehicles]
    statuses = wait_committed(client, submit_all(client, txs))
    ids = []
    for status in statuses:
        opened = next(e for e in status.result.events if e.type == "payments_channel_opened")
        ids.append(int(opened.get("channel_id")))
    return ids


def read_terms(client: sdk.Client, chain_id: str, channel_id: int) -> ChannelTerms:
    """A channel's terms as the chain shows them now."""
    record = client.query("payments", "channel", id=str(channel_id))
    key = PublicKey(int(record["voucher_key"]["scheme"]), bytes.fromhex(record["voucher_key"]["key"]))
    return ChannelTerms(chain_id, channel_id, key, int(record["deposit"]), int(record["redeemed"]),
                        int(record["nonce"]))


def count_txs(client: sdk.Client, first_height: int, last_height: int) -> dict[str, int]:
    """Committed txs between two heights (inclusive), by what they did: opens, redeems, closes, other."""
    # A close redeems and settles: what settles counts as a close, before what redeems.
    kinds = (("payments_channel_settled", "closes"), ("payments_channel_opened", "opens"),
             ("payments_channel_topped_up", "top_ups"), ("payments_voucher_redeemed", "redeems"))
    counts = {"opens": 0, "top_ups": 0, "redeems": 0, "closes": 0, "other": 0, "blocks": 0}
    for height in range(first_height, last_height + 1):
        block = client.get_block(height)
        counts["blocks"] += 1
        for result in block.results:
            types = {event.type for event in result.events}
            counts[next((kind for event, kind in kinds if event in types), "other")] += 1
    return counts


# -- the operator: redeeming vouchers ------------------------------------------------------------

def rest_settle(client: sdk.Client, chain_id: str, operator_key: PrivateKey) -> Settle:
    """The CSMS's `settle` through a node's REST API: one channel_redeem per voucher, submitted as one
    batch with consecutive nonces, then each checked in its block (redeem.py calls it once per round)."""
    nonces: dict[str, int] = {}

    def settle(items: list[tuple[ChannelTerms, Voucher]]) -> list[str | None]:
        nonce = nonces.get("next")
        if nonce is None:
            nonce = client.get_nonce(operator_key.address())
        txs = []
        for offset, (terms, voucher) in enumerate(items):
            signed = sdk.Voucher(chain_id, terms.channel_id, voucher.amount, voucher.nonce, voucher.signature)
            txs.append(sdk.redeem_voucher(chain_id, operator_key, nonce + offset, signed))
        results = client.submit_batch(txs).results
        answers: list[str | None] = [None if r.ok else f"{r.codespace}/{r.code} {r.log}" for r in results]
        # A refused tx leaves a gap in the nonces: ask the node again next round.
        nonces["next"] = nonce + len(txs) if all(r.ok for r in results) else None
        admitted = [(index, r.tx_id) for index, r in enumerate(results) if r.ok]
        if admitted:
            _check_committed(client, admitted, answers)
        return answers

    return settle


def _check_committed(client: sdk.Client, admitted: list[tuple[int, str]], answers: list[str | None]) -> None:
    """Wait for the last tx (one sender's nonces commit in order), then note each one's result in its block."""
    last = client.wait(admitted[-1][1], GUARD_S)
    if not last.committed:
        for index, _ in admitted:
            answers[index] = f"not committed within {GUARD_S} s"
        return
    first = client.get_tx(admitted[0][1])
    results = {}
    for height in range(first.height, last.height + 1):
        block = client.get_block(height)
        results.update(zip(block.tx_ids, block.results))
    for index, tx_id in admitted:
        result = results.get(tx_id)
        if result is None or not result.ok:
            answers[index] = f"tx {tx_id}: " + (result.log if result is not None else "not in its blocks")


# -- the protocol peers ---------------------------------------------------------------------------

class SimStation(ChargePoint):
    """An OCPP 2.0.1 charge point that answers the CSMS's CostUpdated and RequestStopTransaction."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cost_updates = 0
        self.stops: list[str] = []

    @on("CostUpdated")
    def on_cost_updated(self, total_cost: float, transaction_id: str, **_: Any) -> Any:
        """Show the running cost (counted here)."""
        self.cost_updates += 1
        return call_result.CostUpdated()

    @on("RequestStopTransaction")
    def on_request_stop(self, transaction_id: str, **_: Any) -> Any:
        """The CSMS stops a session whose vehicle fell behind (never in a simulated run that pays)."""
        self.stops.append(transaction_id)
        return call_result.RequestStopTransaction(status="Accepted")


class SimVehicle(VehicleClient):
    """A vehicle that pays every cost and times each voucher until the CSMS answers it."""

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


def transaction_event(kind: str, session_id: str, seq: int, token: str | None, wh: int | None = None,
                      at: datetime | None = None) -> call.TransactionEvent:
    """A 2.0.1 TransactionEvent: by default `seq` minutes into a session with `seq` kWh delivered."""
    wh = seq * WH_PER_READING if wh is None else wh
    stamp = format_time(T0 + timedelta(minutes=seq) if at is None else at)
    meter = [{"timestamp": stamp, "sampled_value": [{"value": wh, "unit_of_measure": {"unit": "Wh"},
                                                     "measurand": "Energy.Active.Import.Register"}]}]
    return call.TransactionEvent(
        event_type=kind, timestamp=stamp, trigger_reason="MeterValuePeriodic" if kind == "Updated" else "Authorized",
        seq_no=seq, transaction_info={"transaction_id": session_id}, meter_value=meter,
        evse={"id": 1, "connector_id": 1},
        id_token={"id_token": token, "type": "Central"} if token else None)


def format_time(at: datetime) -> str:
    """An OCPP timestamp (UTC, `Z`)."""
    return at.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


@dataclass
class ChargerLink:
    """One charge point's open connection and its station."""

    charger_id: str
    connection: Any
    station: SimStation
    loop: asyncio.Task
    calls: int = 0


async def connect_charger(base_url: str, charger_id: str, password: str,
                          tls: ssl.SSLContext | None = None) -> ChargerLink:
    """Connect a charge point with its password (over wss://, trusting `tls`'s CA) and boot it."""
    auth = base64.b64encode(f"{charger_id}:{password}".encode()).decode()
    connection = await connect(f"{base_url}/ocpp/{charger_id}", subprotocols=["ocpp2.0.1"],
                               additional_headers={"Authorization": f"Basic {auth}"}, open_timeout=GUARD_S,
                               **connect_options(tls))
    station = SimStation(charger_id, connection, response_timeout=GUARD_S)
    link = ChargerLink(charger_id, connection, station, asyncio.create_task(station.start()))
    boot = await station.call(call.BootNotification(charging_station={"model": "sim", "vendor_name": "cityledger"},
                                                    reason="PowerUp"))
    if boot.status != "Accepted":
        raise RuntimeError(f"{charger_id}: boot {boot.status}")
    link.calls += 1
    return link


async def close_charger(link: ChargerLink) -> None:
    """Stop the station's receive loop and close its connection."""
    link.loop.cancel()
    await link.connection.close()


@dataclass
class Progress:
    """What the drivers have done so far (read by a progress bar)."""

    sessions: int = 0
    energy_wh: int = 0
    billed_micro: int = 0
    receipts: list = field(default_factory=list)


async def drive_charger(link: ChargerLink, vehicle: SimVehicle, token: str, sessions: int, readings: int,
                        progress: Progress) -> None:
    """Run `sessions` complete sessions on one charger, each paid by `vehicle` and ended with a receipt."""
    for _ in range(sessions):
        await drive_session(link, vehicle, token, f"{link.charger_id}-{link.calls}", readings, progress)


async def drive_session(link: ChargerLink, vehicle: SimVehicle, token: str, session_id: str, readings: int,
                        progress: Progress, meter: list[tuple[int, datetime]] | None = None) -> None:
    """One complete session: Started, `readings` Updated and Ended, each sent once the vehicle's voucher
    for the previous cost was answered; then its receipt. `meter` gives the (Wh, time) of each of the
    readings + 2 events (default: 1 kWh and a minute apart from T0)."""
    base = vehicle.answered
    for seq in range(readings + 2):
        kind = "Started" if seq == 0 else "Ended" if seq == readings + 1 else "Updated"
        wh, at = meter[seq] if meter else (None, None)
        await link.station.call(transaction_event(kind, session_id, seq, token if seq == 0 else None, wh, at))
        link.calls += 1
        await vehicle.until_answered(base + seq + 1)
    receipt = await asyncio.wait_for(vehicle.receipts.get(), GUARD_S)
    if receipt.session_id != session_id or not receipt.verify():
        raise RuntimeError(f"session {session_id}: no valid receipt (got {receipt.session_id})")
    progress.sessions += 1
    progress.energy_wh += receipt.energy_wh
    progress.billed_micro += receipt.cost_micro
    progress.receipts.append(receipt)


def percentile(values: list[float], fraction: float) -> float:
    """The value at `fraction` of the sorted values (0 for none)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] if ordered else 0.0


def operator_address(key: PrivateKey) -> str:
    """The operator's account address as text."""
    return address_to_str(key.address())
