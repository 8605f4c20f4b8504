"""The charging station management system: chargers over OCPP, vehicles over their own endpoint.

    csms = Csms(registry, Tariff(per_kwh_micro=300_000), operator_key)
    id_token = csms.authorize_vehicle(ChannelTerms(chain_id, channel_id, vehicle_key, deposit))
    await csms.start("127.0.0.1", 9000)   # ws://host:9000/ocpp/<charger id>, ws://host:9000/vehicle/<id token>
    await csms.start("0.0.0.0", 9000, tls.server_context(cert, key))   # wss://: security profile 2

Chargers connect to `/ocpp/<charger id>` with HTTP basic auth (security profile 1; over TLS,
profile 2) and the subprotocol `ocpp2.0.1` or `ocpp1.6`; when the TLS context verifies client
certificates (profile 3), a charger instead presents one the city CA issued to its id (tls.py).
A vehicle connects to `/vehicle/<id token>`, proves it holds its channel's voucher key, and pays
each running cost with a voucher; a vehicle that falls more than `margin_micro` behind is stopped.
The CSMS touches the ledger only through `settle` (set by the node): redeem.py's rounds hand it each
channel's newest voucher once its session ended.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import ssl
import time
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Coroutine

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, NegotiationError
from websockets.http11 import Request, Response

from ...core.keys import PrivateKey
from . import fastpath, vehicle_protocol
from .accounting import (
    AccountingError,
    ChannelTerms,
    Receipt,
    Session,
    Voucher,
    VoucherBook,
    compute_id_token,
    sign_receipt,
)
from .points import Point16, Point201
from .registry import ChargerRegistry
from .settings import DEFAULT_MARGIN_MICRO, DEFAULT_PORT, SESSION_TIMEOUT_S
from .tariff import Tariff
from .tls import compute_peer_common_name

if TYPE_CHECKING:
    from .redeem import Settle
    from .store import CsmsStore
    from .vehicle_auth import VehicleAuthority

LOG = logging.getLogger("cityledger.charging")
SUBPROTOCOLS = {"ocpp2.0.1": Point201, "ocpp1.6": Point16}  # the server prefers the first a charger offers
MAX_FRAME_BYTES = 65_536  # one WebSocket message, charger or vehicle
MAX_SESSIONS = 100_000  # sessions kept in memory (open ones and paid ones not yet redeemed)
MAX_VEHICLES = 100_000  # vehicles authorised at once


class Csms:
    """Chargers, vehicles, sessions and what each vehicle owes; one per operator."""

    def __init__(self, registry: ChargerRegistry, tariff: Tariff, operator_key: PrivateKey,
                 margin_micro: int = DEFAULT_MARGIN_MICRO, *, store: "CsmsStore | None" = None,
                 authority: "VehicleAuthority | None" = None,
                 session_timeout_s: int = SESSION_TIMEOUT_S) -> None:
        self.registry, self.tariff, self.operator_key, self.margin_micro = registry, tariff, operator_key, margin_micro
        self.store, self.authority, self.session_timeout_s = store, authority, session_timeout_s
        # Redeems channels' newest vouchers on chain (the node's; redeem.py calls it off the loop).
        self.settle: "Settle | None" = None
        self.redeem_lock = asyncio.Lock()
        self.refused_redeems: dict[str, int] = {}  # id token -> the voucher nonce the chain refused
        self.redeemed_txs = 0  # vouchers the chain redeemed since this CSMS started
        self._remote_start_id = 0
        self.starts16: dict[str, str] = {}  # an open 1.6 session's start_key -> its transaction id
        self.books: dict[str, VoucherBook] = {}  # id token -> the vehicle's channel
        self.sessions: dict[str, Session] = {}
        self.current: dict[str, str] = {}  # id token -> its newest session
        self.receipts: dict[str, Receipt] = {}
        self.receipts_issued = 0  # since this CSMS started (receipts of forgotten sessions included)
        self.points: dict[str, Point201 | Point16] = {}
        self.vehicles: dict[str, ServerConnection] = {}
        self._tasks: set[asyncio.Task] = set()
        self._next_tx = 0
        self._server: Server | None = None
        self.client_certificates = False  # profile 3: chargers log in with a certificate, not a password
        fastpath.install()
        if store is not None:
            self._restore(store)

    def _restore(self, store: "CsmsStore") -> None:
        """Take up the sessions, channels and transaction ids a previous run acknowledged."""
        self.books, self.sessions = store.load()
        self._next_tx = store.next_transaction_id()
        for session in sorted(self.sessions.values(), key=lambda s: (not s.ended, s.started_at)):
            if session.id_token:  # open sessions sort last: a vehicle's current session is its open one
                self.current[session.id_token] = session.session_id
            if session.start_key:
                self.starts16[session.start_key] = session.session_id

    def persist_book(self, id_token: str) -> None:
        """Write one vehicle's channel and newest voucher (with a store)."""
        if self.store is not None:
            self.store.save({id_token: self.books[id_token]}, [])

    def persist(self, session: Session) -> None:
        """Write a session and its vehicle's channel, before the message that changed them is answered."""
        if self.store is not None:
            books = {session.id_token: self.books[session.id_token]} if session.id_token else {}
            self.store.save(books, [session])

    # -- vehicles and sessions -------------------------------------------------------------------

    def authorize_vehicle(self, terms: ChannelTerms, id_token: str | None = None) -> str:
        """Accept a vehicle paying through `terms` (a channel to this operator); return its idToken."""
        id_token = id_token or compute_id_token(self.operator_key.public_key, terms)
        if id_token not in self.books and len(self.books) >= MAX_VEHICLES:
            raise AccountingError(f"vehicle: the CSMS holds its maximum of {MAX_VEHICLES} vehicles")
        book = self.books.get(id_token)
        if book is None or book.terms != terms:
            self.books[id_token] = VoucherBook(terms)
            self.persist_book(id_token)
        return id_token

    def authorize(self, id_token: str, token_type: str) -> str:
        """OCPP's authorization status for an idToken."""
        book = self.books.get(id_token)
        if token_type != "Central" or book is None:
            return "Unknown"
        return "Accepted" if book.covered_micro < book.terms.deposit else "NoCredit"

    def next_transaction_id(self) -> int:
        """A fresh OCPP 1.6 transaction id."""
        self._next_tx += 1
        if self.store is not None:
            self.store.save_transaction_id(self._next_tx)
        return self._next_tx

    def open_session(self, point: Any, session_id: str, id_token: str | None, wh: int | None, at: Any,
                     seq_no: int | None = None, start_key: str = "") -> str:
        """Start a session for a charger; return the idToken status the charger is told."""
        known = self.sessions.get(session_id)
        if known is not None and seq_no is not None and seq_no <= known.seq_no and known.charger_id == point.id:
            return "Accepted" if known.id_token else "Unknown"  # a replayed Started: acknowledged again
        if known is not None:
            raise AccountingError(f"transaction_id: session {session_id!r} already started")
        if len(self.sessions) >= MAX_SESSIONS:
            raise AccountingError(f"transaction_id: the CSMS holds its maximum of {MAX_SESSIONS} sessions")
        status = self.authorize(id_token, "Central") if id_token else "Unknown"
        busy = id_token in self.current and not self.sessions[self.current[id_token]].ended
        status = "ConcurrentTx" if status == "Accepted" and busy else status
        accepted = id_token if status == "Accepted" else None
        base = self.books[accepted].covered_micro if accepted else 0
        session = Session(session_id, point.id, self.tariff, at, wh, accepted, base)
        session.seq_no, session.start_key = -1 if seq_no is None else seq_no, start_key
        session.touched_s = time.time()
        if start_key:
            self.starts16[start_key] = session_id
        self.sessions[session_id] = session
        if accepted:
            self.current[accepted] = session_id
        self.persist(session)
        self._after_cost(point, session, started=True)
        return status

    def advance(self, point: Any, session_id: str, id_token: str | None, wh: int | None, at: Any,
                ended: bool = False, seq_no: int | None = None) -> Session:
        """A reading (and perhaps the end) for a session of this charger."""
        session = self.sessions.get(session_id)
        if session is None or session.charger_id != point.id:
            raise AccountingError(f"transaction_id: no session {session_id!r} on charger {point.id!r}")
        if seq_no is not None and seq_no <= session.seq_no:
            return session  # replayed or late (offline queue): a newer event already covers it
        if session.ended:
            if ended and seq_no is None and wh in (None, session.meter_wh):
                return session  # a 1.6 StopTransaction sent again after a lost answer
            raise AccountingError(f"transaction_id: session {session_id!r} has ended")
        if wh is not None and at < session.last_at and wh <= session.meter_wh:
            wh = None  # a queued reading older than one applied: the register already counts it
        if wh is not None:
            session.record_meter(wh, at)
        if seq_no is not None:
            session.seq_no = seq_no
        session.touched_s = time.time()
        if session.id_token is None and id_token and self.authorize(id_token, "Central") == "Accepted":
            # 2.0.1 lets a charger start before the driver authorises ("plug in first").
            session.id_token, session.base_micro = id_token, self.books[id_token].covered_micro
            self.current[id_token] = session_id
        session.ended = ended
        self.persist(session)
        self._after_cost(point, session)
        return session

    def accept_voucher(self, id_token: str, voucher: Voucher) -> Receipt | None:
        """Keep a vehicle's voucher for its current session; return the receipt once an ended session is paid."""
        session_id = self.current.get(id_token)
        if session_id is None:
            raise AccountingError("session: this vehicle has no session to pay")
        session, book = self.sessions[session_id], self.books[id_token]
        book.accept(voucher, session.base_micro + session.cost_micro)
        self.persist(session)
        if session.ended and self.unpaid_micro(session) == 0 and session_id not in self.receipts:
            receipt = Receipt(book.terms.chain_id, book.terms.channel_id, session_id, session.energy_wh,
                              session.cost_micro, voucher.digest(book.terms.chain_id), self.operator_key.public_key)
            self.receipts[session_id] = sign_receipt(self.operator_key, receipt)
            self.receipts_issued += 1
            return self.receipts[session_id]
        return None

    def unpaid_micro(self, session: Session) -> int:
        """What a session's vehicle still owes on it."""
        paid = self.books[session.id_token].covered_micro - session.base_micro if session.id_token else 0
        return session.cost_micro - paid

    def final_voucher(self, session_id: str) -> Voucher | None:
        """The voucher the operator redeems on chain for an ended session (its channel's newest)."""
        session = self.sessions[session_id]
        if not session.ended or session.id_token is None:
            return None
        return self.books[session.id_token].newest

    def forget_session(self, session_id: str) -> None:
        """Drop an ended session (after its voucher was redeemed on chain) to make room for new ones."""
        session = self.sessions.get(session_id)
        if session is None or not session.ended:
            raise AccountingError(f"session_id: expected an ended session, got {session_id!r}")
        del self.sessions[session_id]
        self.receipts.pop(session_id, None)
        self.starts16.pop(session.start_key, None)
        if self.store is not None:
            self.store.delete_session(session_id)
        if session.id_token and self.current.get(session.id_token) == session_id:
            del self.current[session.id_token]

    async def request_start(self, charger_id: str, id_token: str, evse_id: int = 1) -> str:
        """RequestStartTransaction (1.6: RemoteStartTransaction) for an authorised vehicle; the charger's status.

        Awaits the charger's answer, so call it from a task of its own, never from an OCPP handler.
        """
        point = self._point(charger_id)
        if id_token not in self.books:
            raise AccountingError(f"id_token: {id_token[:40]!r} is not an authorised vehicle")
        self._remote_start_id += 1
        return await point.send_start(id_token, evse_id, self._remote_start_id)

    async def get_variables(self, charger_id: str, names: list[tuple[str, str]]) -> dict[str, str | None]:
        """GetVariables (1.6: GetConfiguration) of a connected charger; call it from its own task."""
        return await self._point(charger_id).get_variables(names)

    def _point(self, charger_id: str) -> Any:
        point = self.points.get(charger_id)
        if point is None:
            raise AccountingError(f"charger_id: {charger_id[:48]!r} is not connected")
        return point

    def _after_cost(self, point: Any, session: Session, started: bool = False) -> None:
        """Send the running cost to the charger and the vehicle; stop a vehicle that fell behind."""
        if session.ended:
            LOG.info("%s: session %s ended: %d Wh, %d micro", point.id, session.session_id, session.energy_wh,
                     session.cost_micro)
        else:
            if started:
                # 2.0.1's TransactionEvent answer carries the running cost (totalCost) of Updated and
                # Ended events only (I02.FR.01: that or CostUpdated); the cost at the start goes in a
                # CostUpdated. A CostUpdated after every reading would repeat the answer's totalCost
                # at the price of a round trip per reading.
                self._spawn(point.send_cost(session.session_id, session.cost_micro))
            if self.unpaid_micro(session) > self.margin_micro and not session.stop_requested:
                session.stop_requested = True
                LOG.info("%s: stopping session %s: unpaid %d micro", point.id, session.session_id,
                         self.unpaid_micro(session))
                self._spawn(point.send_stop(session.session_id))
        if session.id_token in self.vehicles:
            self._spawn(self._tell_vehicle(session))

    def _spawn(self, coroutine: Coroutine) -> None:
        """Run a call to a peer as its own task, so no handler waits on the peer's answer."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            LOG.warning("call to a peer failed: %r", task.exception())

    async def _tell_vehicle(self, session: Session) -> None:
        connection = self.vehicles.get(session.id_token)
        if connection is not None:
            await connection.send(vehicle_protocol.cost_message(session))

    # -- the server ------------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                    tls: ssl.SSLContext | None = None) -> int:
        """Listen for chargers and vehicles (wss:// with a TLS context); return the bound port (0: a free one)."""
        self.client_certificates = tls is not None and tls.verify_mode != ssl.CERT_NONE
        self._server = await serve(self._serve, host, port, process_request=self._process_request,
                                   select_subprotocol=_select_subprotocol, max_size=MAX_FRAME_BYTES, ssl=tls)
        from .expiry import run_expiry
        from .redeem import run_redeemer

        self._spawn(run_expiry(self))
        self._spawn(run_redeemer(self))
        return self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Close every connection and the listener."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()

    async def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Refuse, before the WebSocket opens, unknown paths and chargers without their password."""
        kind, _, name = request.path.lstrip("/").partition("/")
        if kind == "vehicle" and name in self.books:
            return None
        if request.path == "/authorize" and self.authority is not None:
            return None
        if kind != "ocpp" or not name:
            return connection.respond(HTTPStatus.NOT_FOUND, "expected /ocpp/<charger id> or /vehicle/<id token>\n")
        if self.client_certificates:
            return await self._check_certificate(connection, name)
        login = _basic_auth(request.headers)
        # scrypt takes tens of ms: off the event loop, so other chargers keep being served.
        if login is None or login[0] != name or not await asyncio.to_thread(self.registry.is_valid_login, *login):
            response = connection.respond(HTTPStatus.UNAUTHORIZED, "charger id or password refused\n")
            response.headers["WWW-Authenticate"] = 'Basic realm="ocpp", charset="UTF-8"'
            return response
        return None

    async def _check_certificate(self, connection: ServerConnection, name: str) -> Response | None:
        """Profile 3: the TLS handshake verified the charger's certificate; its CN must be this registered charger."""
        tls = connection.transport.get_extra_info("ssl_object")
        common_name = compute_peer_common_name(tls.getpeercert() if tls is not None else None)
        if common_name is None:
            return connection.respond(HTTPStatus.UNAUTHORIZED, "expected a charger certificate from the city CA\n")
        if common_name != name or not await asyncio.to_thread(self.registry.is_registered, name):
            return connection.respond(HTTPStatus.FORBIDDEN, "the certificate's CN is not this registered charger\n")
        return None

    async def _serve(self, connection: ServerConnection) -> None:
        kind, _, name = connection.request.path.lstrip("/").partition("/")
        if kind == "authorize":
            from .vehicle_auth import serve_authorize

            await serve_authorize(self, connection)
            return
        if kind == "vehicle":
            await vehicle_protocol.serve_vehicle(self, connection, name)
            return
        point = SUBPROTOCOLS[connection.subprotocol](name, connection, self)
        old = self.points.get(name)
        if old is not None:
            # A charger that reconnects (its old link half-open) is the same charger: its sessions go on.
            await old.connection.close(1000, "replaced by a newer connection of this charger")
        self.points[name] = point
        try:
            await point.start()
        except ConnectionClosed:
            LOG.info("%s: disconnected", name)
        finally:
            if self.points.get(name) is point:
                del self.points[name]


def _basic_auth(headers: Headers) -> tuple[str, str] | None:
    """(user, password) from an Authorization: Basic header, or None."""
    value = headers.get("Authorization", "")
    scheme, _, encoded = value.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


def _select_subprotocol(connection: ServerConnection, offered: Any) -> Any:
    """Chargers must offer ocpp2.0.1 or ocpp1.6; vehicles use none."""
    if connection.request.path.startswith("/vehicle/") or connection.request.path == "/authorize":
        return None
    for name in SUBPROTOCOLS:
        if name in offered:
            return name
    raise NegotiationError(f"subprotocol: expected one of {', '.join(SUBPROTOCOLS)}, got {', '.join(offered) or 'none'}")

