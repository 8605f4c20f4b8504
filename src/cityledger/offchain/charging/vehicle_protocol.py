"""The vehicle's endpoint on the CSMS, `/vehicle/<id token>`, and the vehicle's client for it.

JSON text frames. The CSMS opens with a random challenge; the vehicle answers with its channel's
voucher key's signature over it (no DID or owner identity: the idToken is a pseudonym). Then the
CSMS sends each running cost of the vehicle's session, the vehicle answers with a voucher for what
it owes in total, and once an ended session is paid the CSMS sends a receipt signed by the operator:

    CSMS -> {"type": "challenge", "nonce": hex}
    vehicle -> {"type": "hello", "signature": hex}
    CSMS -> {"type": "cost", "session_id", "energy_wh", "cost_micro", "owed_micro", "ended"}
    vehicle -> {"type": "voucher", "channel_id", "amount", "nonce", "signature": hex}
    CSMS -> {"type": "accepted", "amount"} | {"type": "refused", "error"} | {"type": "receipt", ...}
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
from typing import TYPE_CHECKING, Any

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from ...core.keys import PrivateKey, verify_signature
from ...modules.payments.vouchers import sign_voucher
from .accounting import AccountingError, Receipt, Session, Voucher
from .tls import connect_options

if TYPE_CHECKING:
    from .csms import Csms

DOMAIN_HELLO = b"cityledger/charging-vehicle-hello/1\x00"
CHALLENGE_BYTES = 32
HELLO_TIMEOUT_S = 10  # a vehicle that does not answer the challenge in time is disconnected


def compute_hello_bytes(id_token: str, nonce: bytes) -> bytes:
    """What the vehicle signs to show it holds the channel's voucher key."""
    return DOMAIN_HELLO + id_token.encode() + b"\x00" + nonce


def cost_message(session: Session) -> str:
    """A session's running cost (or bill, once ended) as the vehicle is told it."""
    return json.dumps({"type": "cost", "session_id": session.session_id, "energy_wh": session.energy_wh,
                       "cost_micro": session.cost_micro, "owed_micro": session.base_micro + session.cost_micro,
                       "ended": session.ended})


def _voucher(data: dict) -> Voucher:
    """A voucher frame as a Voucher; AccountingError naming the field otherwise."""
    try:
        return Voucher(int(data["channel_id"]), int(data["amount"]), int(data["nonce"]), bytes.fromhex(data["signature"]))
    except (KeyError, TypeError, ValueError) as error:
        raise AccountingError(f"voucher: expected channel_id, amount, nonce (integers) and signature (hex): {error}") from None


async def serve_vehicle(csms: "Csms", connection: ServerConnection, id_token: str) -> None:
    """One vehicle's connection: the challenge, then vouchers until it leaves."""
    nonce = os.urandom(CHALLENGE_BYTES)
    await connection.send(json.dumps({"type": "challenge", "nonce": nonce.hex()}))
    try:
        hello = json.loads(await asyncio.wait_for(connection.recv(), HELLO_TIMEOUT_S))
        signature = bytes.fromhex(hello["signature"])
    except (TimeoutError, ConnectionClosed, ValueError, KeyError, TypeError):
        await connection.close(1008, "expected a hello with a hex signature")
        return
    if not verify_signature(csms.books[id_token].terms.voucher_key, compute_hello_bytes(id_token, nonce), signature):
        await connection.close(1008, "hello: not signed by the channel's voucher key")
        return
    csms.vehicles[id_token] = connection
    try:
        if id_token in csms.current:
            await connection.send(cost_message(csms.sessions[csms.current[id_token]]))
        async for frame in connection:
            await connection.send(_answer(csms, id_token, frame))
    except ConnectionClosed:
        pass
    finally:
        if csms.vehicles.get(id_token) is connection:
            del csms.vehicles[id_token]


def _answer(csms: "Csms", id_token: str, frame: Any) -> str:
    """The CSMS's answer to one vehicle frame."""
    try:
        data = json.loads(frame)
        if not isinstance(data, dict) or data.get("type") != "voucher":
            raise AccountingError("type: expected \"voucher\"")
        voucher = _voucher(data)
        receipt = csms.accept_voucher(id_token, voucher)
    except (AccountingError, ValueError) as error:
        return json.dumps({"type": "refused", "error": str(error)})
    if receipt is not None:
        return json.dumps({"type": "receipt", **receipt.to_json()})
    return json.dumps({"type": "accepted", "amount": voucher.amount})


class VehicleClient:
    """A vehicle paying over the endpoint: signs a voucher for every cost it is told (if `pay`)."""

    def __init__(self, base_url: str, id_token: str, key: PrivateKey, chain_id: str, channel_id: int,
                 nonce: int = 0, pay: bool = True, tls: ssl.SSLContext | None = None) -> None:
        self.url, self.tls = f"{base_url.rstrip('/')}/vehicle/{id_token}", tls  # tls: a wss:// CSMS's CA
        self.id_token, self.key, self.chain_id, self.channel_id = id_token, key, chain_id, channel_id
        self.nonce, self.pay = nonce, pay
        self.receipts: asyncio.Queue[Receipt] = asyncio.Queue()
        self.refusals: list[str] = []
        self.costs: list[dict] = []
        self._task: asyncio.Task | None = None
        self._ready = asyncio.Event()

    async def __aenter__(self) -> "VehicleClient":
        self._task = asyncio.get_running_loop().create_task(self._run())
        await asyncio.wait([self._task, asyncio.ensure_future(self._ready.wait())],
                           return_when=asyncio.FIRST_COMPLETED)
        if self._task.done():
            self._task.result()
        return self

    async def __aexit__(self, *_: Any) -> None:
        if self._task is not None:
            self._task.cancel()

    def sign(self, amount: int) -> dict:
        """The next voucher frame for a cumulative `amount`."""
        self.nonce += 1
        signature = sign_voucher(self.key, self.chain_id, self.channel_id, amount, self.nonce)
        return {"type": "voucher", "channel_id": self.channel_id, "amount": amount, "nonce": self.nonce,
                "signature": signature.hex()}

    async def _run(self) -> None:
        async with connect(self.url, **connect_options(self.tls)) as connection:
            challenge = json.loads(await connection.recv())
            hello = compute_hello_bytes(self.id_token, bytes.fromhex(challenge["nonce"]))
            await connection.send(json.dumps({"type": "hello", "signature": self.key.sign(hello).hex()}))
            self._ready.set()
            async for frame in connection:
                await self._on_frame(connection, json.loads(frame))

    async def _on_frame(self, connection: Any, data: dict) -> None:
        if data["type"] == "cost":
            self.costs.append(data)
            if self.pay:
                await connection.send(json.dumps(self.sign(data["owed_micro"])))
        elif data["type"] == "receipt":
            self.receipts.put_nowait(Receipt.from_json(data))
        elif data["type"] == "refused":
            self.refusals.append(data["error"])
