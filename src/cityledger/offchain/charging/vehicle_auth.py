"""How a vehicle authorises itself with an operator's CSMS: device DID, registration credential, channel.

The vehicle proves three things over the CSMS's `/authorize` WebSocket (JSON text frames), never
over OCPP: that it holds the key of a registered, active vehicle device (a device-message
signature over the CSMS's challenge), that an accredited office registered that device and has not
revoked it (an AnonCreds presentation of its vehicle-registration credential revealing only
`device_did`, non-revocation proven at the height the request pins), and that an open payment
channel from the device's own account to the operator pays for it. The CSMS answers with an
idToken of type Central: a pseudonym of the device under the operator's secret, stable for this
vehicle and operator, unlinkable across operators; it carries no DID, owner or name.

    CSMS    -> {"type": "challenge", "nonce": hex, "chain_id", "operator": city…, "request": {...}}
    vehicle -> {"type": "authorize", "device": did, "signature": hex, "presentation": str,
                "channel_id": int | null, "charger_id"?: str, "evse_id"?: int}
    CSMS    -> {"type": "authorized", "id_token", "channel_id", "deposit", "covered", "remote_start"?}
             | {"type": "refused", "field", "error"}

A `channel_id` of null reuses the channel the CSMS already knows for this vehicle. With a
`charger_id`, the CSMS then asks that charger to start a session for the idToken
(RequestStartTransaction; 1.6 RemoteStartTransaction) and reports the charger's answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from ...core.encoding import encode
from ...core.keys import PrivateKey, Signer, compute_address
from ...core.types import address_to_str
from ...modules.devices import check_device_message, compute_device_did, compute_message_bytes, get_device
from ...modules.devices.messages import KIND_VEHICLE, STATUS_ACTIVE
from ...modules.identity.keeper import KEEPER as IDENTITY
from ...modules.identity.presentations import MAX_PRESENTATION_BYTES
from ...modules.payments import get_channel
from ...modules.payments.messages import STATUS_OPEN
from ..identity.ledger import LedgerReader
from ..identity.types import VEHICLE_REGISTRATION
from ..identity.verifier import Verifier
from .accounting import IDTOKEN_CHARS, AccountingError, ChannelTerms
from .registry import CHARGER_ID_RE
from .tls import connect_options

if TYPE_CHECKING:
    from ..identity.wallet import Wallet
    from .csms import Csms

DOMAIN_AUTHORIZE = b"cityledger/charging-authorize/1\x00"
DOMAIN_PSEUDONYM = b"cityledger/charging-pseudonym/1\x00"
CHALLENGE_BYTES = 32
PSEUDONYM_SECRET_BYTES = 32
AUTHORIZE_TIMEOUT_S = 60  # a vehicle must answer the challenge (its presentation included) within this
MAX_AUTHORIZE_FRAME_BYTES = MAX_PRESENTATION_BYTES + 4_096  # the answer: a presentation and a few fields
MAX_DID_CHARS = 128
MAX_CHANNEL_ID = 2**63 - 1
MAX_EVSE_ID = 1_000  # an `evse_id` (1.6: connector id) for a remote start
REVEALED = "attr_device_did"


class AuthorizationRefused(ValueError):
    """The CSMS refused a vehicle: `field` names what failed."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


@dataclass(frozen=True)
class Grant:
    """A vehicle the CSMS accepted: its pseudonym and the channel that pays."""

    id_token: str
    terms: ChannelTerms


def compute_pseudonym(secret: bytes, device_did: str) -> str:
    """The vehicle's idToken towards one operator: HMAC of its DID under the operator's secret."""
    mac = hmac.new(secret, DOMAIN_PSEUDONYM + device_did.encode(), hashlib.sha256).hexdigest()
    return mac[:IDTOKEN_CHARS]


def compute_authorize_payload(chain_id: str, operator: str, nonce: bytes) -> bytes:
    """What the vehicle's device key signs (inside the devices module's message domain)."""
    return DOMAIN_AUTHORIZE + encode([chain_id, operator, nonce])


class VehicleAuthority:
    """The operator's checks on a vehicle: device signature, credential presentation, channel."""

    def __init__(self, ledger: LedgerReader, chain_id: str, operator: bytes, secret: bytes,
                 verifier: Verifier | None = None) -> None:
        self.ledger, self.chain_id, self.operator, self.secret = ledger, chain_id, operator, secret
        self.verifier = verifier or Verifier(ledger)

    def challenge(self) -> dict[str, Any]:
        """A fresh challenge: a nonce and a sealed request for the vehicle-registration credential."""
        request = self.verifier.request("charging-authorize", VEHICLE_REGISTRATION, reveal=["device_did"])
        return {"type": "challenge", "nonce": os.urandom(CHALLENGE_BYTES).hex(), "chain_id": self.chain_id,
                "operator": address_to_str(self.operator), "request": request}

    def check(self, challenge: Mapping[str, Any], answer: Any, known: ChannelTerms | None) -> Grant:
        """The grant for a vehicle's answer; AuthorizationRefused naming the first check that failed."""
        did, signature, presentation, channel_id = _parse_answer(answer)
        state = self.ledger.state_at(self.ledger.height())
        record = get_device(state, did)
        if record is None or record.kind != KIND_VEHICLE:
            raise AuthorizationRefused("device", f"{did!r} is not a registered vehicle")
        if record.status != STATUS_ACTIVE:
            raise AuthorizationRefused("device", f"{did} is {record.status}")
        payload = compute_authorize_payload(self.chain_id, address_to_str(self.operator),
                                            bytes.fromhex(challenge["nonce"]))
        problem = check_device_message(IDENTITY, state, did, payload, signature)
        if problem is not None:
            raise AuthorizationRefused("signature", problem)
        verdict = self.verifier.verify(challenge["request"], presentation)
        if not verdict["verified"]:
            raise AuthorizationRefused("presentation", f"not accepted: {verdict['reason']}")
        if verdict["revealed"].get(REVEALED) != did:
            raise AuthorizationRefused("presentation", "the credential registers another device")
        if channel_id is None:
            if known is None:
                raise AuthorizationRefused("channel_id", "no channel known for this vehicle; open one to "
                                                         f"{address_to_str(self.operator)} and name it")
            channel_id = known.channel_id
        return Grant(compute_pseudonym(self.secret, did), self._terms(state, did, channel_id))

    def _terms(self, state: Any, did: str, channel_id: int) -> ChannelTerms:
        """The channel's terms if it is open, pays this operator, and is paid by this device's account."""
        channel = get_channel(state, channel_id)
        if channel is None:
            raise AuthorizationRefused("channel_id", f"no channel {channel_id} on chain {self.chain_id}")
        if channel.status != STATUS_OPEN or channel.closing_height:
            raise AuthorizationRefused("channel_id", f"channel {channel_id} is {channel.status}, closing or settled")
        if channel.payee != self.operator:
            raise AuthorizationRefused("channel_id", f"channel {channel_id} pays another payee")
        device_account = compute_address(Signer(1, [channel.voucher_key]))
        if channel.payer != device_account or compute_device_did(channel.voucher_key) != did:
            raise AuthorizationRefused("channel_id", f"channel {channel_id} is not paid by this vehicle's account")
        if channel.redeemed >= channel.deposit:
            raise AuthorizationRefused("channel_id", f"channel {channel_id} has no deposit left; top it up")
        return ChannelTerms(self.chain_id, channel_id, channel.voucher_key, channel.deposit, channel.redeemed,
                            channel.nonce)


def _parse_answer(answer: Any) -> tuple[str, bytes, str, int | None]:
    """(device DID, signature, presentation, channel id or None) from an answer frame, or why not."""
    if not isinstance(answer, dict) or answer.get("type") != "authorize":
        raise AuthorizationRefused("type", 'expected an object with "type": "authorize"')
    did, signature, presentation = answer.get("device"), answer.get("signature"), answer.get("presentation")
    channel_id = answer.get("channel_id")
    if not isinstance(did, str) or not 0 < len(did) <= MAX_DID_CHARS or not did.isprintable():
        raise AuthorizationRefused("device", f"expected a did:city DID of at most {MAX_DID_CHARS} characters")
    if not isinstance(signature, str) or len(signature) > 512:
        raise AuthorizationRefused("signature", "expected hex of at most 256 bytes")
    try:
        signed = bytes.fromhex(signature)
    except ValueError:
        raise AuthorizationRefused("signature", "expected hex") from None
    if not isinstance(presentation, str) or len(presentation) > MAX_PRESENTATION_BYTES:
        raise AuthorizationRefused("presentation", f"expected a JSON string of at most {MAX_PRESENTATION_BYTES} bytes")
    if channel_id is not None and (type(channel_id) is not int or not 1 <= channel_id <= MAX_CHANNEL_ID):
        raise AuthorizationRefused("channel_id", f"expected null or an integer from 1 to {MAX_CHANNEL_ID}")
    charger_id, evse_id = answer.get("charger_id"), answer.get("evse_id")
    if charger_id is not None and (not isinstance(charger_id, str) or not CHARGER_ID_RE.fullmatch(charger_id)):
        raise AuthorizationRefused("charger_id", "expected null or 1 to 48 of A-Z a-z 0-9 . _ : -")
    if evse_id is not None and (type(evse_id) is not int or not 1 <= evse_id <= MAX_EVSE_ID):
        raise AuthorizationRefused("evse_id", f"expected null or an integer from 1 to {MAX_EVSE_ID}")
    return did, signed, presentation, channel_id


def admit(csms: "Csms", grant: Grant) -> str:
    """Keep a granted vehicle's channel in the CSMS (its newest voucher kept if newer than the chain's)."""
    book = csms.books.get(grant.id_token)
    terms = grant.terms
    open_session = csms.current.get(grant.id_token)
    if book is not None and book.terms.channel_id != terms.channel_id and open_session is not None \
            and not csms.sessions[open_session].ended:
        raise AuthorizationRefused("channel_id", f"a session is open on channel {book.terms.channel_id}; "
                                                 "change channels once it ends")
    if book is not None and book.terms.channel_id == terms.channel_id and book.newest is not None \
            and book.newest.nonce > terms.nonce:
        # The chain has not seen the newest voucher yet: keep it, take the chain's deposit (a top-up).
        book.terms = terms
        csms.persist_book(grant.id_token)
        return grant.id_token
    return csms.authorize_vehicle(terms, id_token=grant.id_token)


async def serve_authorize(csms: "Csms", connection: ServerConnection) -> None:
    """One vehicle's authorisation: challenge, answer, grant or refusal, then the connection closes."""
    authority = csms.authority
    connection.protocol.max_message_size = MAX_AUTHORIZE_FRAME_BYTES  # a presentation exceeds the OCPP frame limit
    challenge = authority.challenge()
    await connection.send(json.dumps(challenge))
    try:
        frame = await asyncio.wait_for(connection.recv(), AUTHORIZE_TIMEOUT_S)
        answer = json.loads(frame)
    except (TimeoutError, ConnectionClosed):
        return
    except (ValueError, RecursionError):
        await _refuse(connection, AuthorizationRefused("frame", "expected one JSON object"))
        return
    try:
        # Presentation checks take tens of ms: off the loop, so chargers keep being served.
        known = _known_terms(csms, authority, answer)
        grant = await asyncio.to_thread(authority.check, challenge, answer, known)
        id_token = admit(csms, grant)
    except AuthorizationRefused as refused:
        await _refuse(connection, refused)
        return
    except AccountingError as error:
        await _refuse(connection, AuthorizationRefused("vehicle", str(error)))
        return
    book = csms.books[id_token]
    answer_frame = {"type": "authorized", "id_token": id_token, "channel_id": book.terms.channel_id,
                    "deposit": book.terms.deposit, "covered": book.covered_micro}
    if answer.get("charger_id") is not None:
        answer_frame["remote_start"] = await _remote_start(csms, id_token, answer)
    await connection.send(json.dumps(answer_frame))
    await connection.close()


async def _remote_start(csms: "Csms", id_token: str, answer: dict) -> str:
    """Ask the named charger to start a session for the vehicle; its status, or why it could not be asked.

    This awaits the charger's answer in the vehicle's connection, never in the charger's receive loop.
    """
    try:
        return await csms.request_start(answer["charger_id"], id_token, answer.get("evse_id") or 1)
    except AccountingError as error:
        return f"Rejected: {error}"
    except Exception as error:  # noqa: BLE001 - a charger that fails to answer does not undo the grant
        return f"Rejected: the charger did not answer ({type(error).__name__})"


def _known_terms(csms: "Csms", authority: VehicleAuthority, answer: Any) -> ChannelTerms | None:
    """The channel the CSMS holds for the answer's device, if any (for a reuse without channel_id)."""
    did = answer.get("device") if isinstance(answer, dict) else None
    if not isinstance(did, str):
        return None
    book = csms.books.get(compute_pseudonym(authority.secret, did))
    return None if book is None else book.terms


async def _refuse(connection: ServerConnection, refused: AuthorizationRefused) -> None:
    try:
        await connection.send(json.dumps({"type": "refused", "field": refused.field, "error": str(refused)}))
        await connection.close(1008, refused.field)
    except ConnectionClosed:
        pass


# -- the vehicle's side ----------------------------------------------------------------------------

async def authorize(base_url: str, device_key: PrivateKey, wallet: "Wallet", ledger: LedgerReader,
                    channel_id: int | None = None, operator: str | None = None, charger_id: str | None = None,
                    evse_id: int | None = None, open_timeout_s: float = AUTHORIZE_TIMEOUT_S,
                    tls: ssl.SSLContext | None = None) -> dict[str, Any]:
    """Authorise a vehicle with a CSMS at `base_url` (ws://host:port, or wss:// trusting `tls`'s CA); its answer.

    `wallet` holds the vehicle's registration credential and `ledger` reads the chain it is proven
    against; with `operator` (city…), a CSMS speaking for another operator is refused before anything
    is signed; with `charger_id`, the CSMS asks that charger to start a session for the vehicle
    (the answer's `remote_start` is the charger's status). Raises AuthorizationRefused with the
    CSMS's reason.
    """
    did = compute_device_did(device_key.public_key)
    url = f"{base_url.rstrip('/')}/authorize"
    async with connect(url, open_timeout=open_timeout_s, max_size=MAX_AUTHORIZE_FRAME_BYTES,
                       **connect_options(tls)) as connection:
        challenge = json.loads(await connection.recv())
        if operator is not None and challenge.get("operator") != operator:
            raise AuthorizationRefused("operator", f"expected {operator}, the CSMS speaks for "
                                                   f"{str(challenge.get('operator'))[:64]!r}")
        payload = compute_authorize_payload(challenge["chain_id"], challenge["operator"],
                                            bytes.fromhex(challenge["nonce"]))
        signature = device_key.sign(compute_message_bytes(did, payload))
        presentation = await asyncio.to_thread(wallet.present, challenge["request"], ledger)
        await connection.send(json.dumps({"type": "authorize", "device": did, "signature": signature.hex(),
                                          "presentation": presentation, "channel_id": channel_id,
                                          "charger_id": charger_id, "evse_id": evse_id}))
        answer = json.loads(await connection.recv())
    if answer.get("type") != "authorized":
        raise AuthorizationRefused(str(answer.get("field", "csms")), str(answer.get("error", answer))
                                   .partition(": ")[2] or str(answer))
    return answer
