"""Identity over a node's REST API, for each role of docs/IDENTITY_PROTOCOL.md.

    from cityledger.sdk import IdentityClient

    with IdentityClient("http://127.0.0.1:8080", token=office_token) as office:   # the ID office
        offer = office.create_offer(office_did, "resident-id", values, reference="ID-0001")
    with IdentityClient(url) as node:                                              # the resident
        wallet = node.open_wallet("alice.wallet", passphrase, create=True)
        node.obtain_credential(wallet, offer)
        request = node.resident_request(today=20250615)                            # a verifier
        verdict = node.verify(request, node.present(wallet, request))

The holder's wallet reads the ledger through `RemoteLedger`: each state value comes with a Merkle
proof that is checked against the app hash the node reports for that height (combine with the
light client, sdk/light.py, to trust that app hash without trusting the node).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence
from urllib.parse import quote, urlsplit

import httpx
import msgspec

from ..offchain.identity.tails import MAX_TAILS_BYTES, TailsFetcher
from ..offchain.identity.types import RESIDENT_ID, compute_years_before
from ..offchain.identity.wallet import Wallet
from ..wire.identity import (
    DeviceMessageBody,
    OfferBody,
    Predicate,
    PresentationRequestBody,
    PublicationView,
    PublishBody,
    RevokeBody,
    VerifyBody,
)
from .client import DEFAULT_TIMEOUT_S, DEFAULT_URL, Client, _raise_for
from .errors import PublicationError

_JSON = {"content-type": "application/json"}
# Publishing creates the type's first revocation registry: minutes at the city's size (131,072).
PUBLISH_TIMEOUT_S = 1_800.0
PUBLISH_POLL_S = 1.0


class RemoteState:
    """A StateReader of one height, over the node's proven state queries (values cached)."""

    def __init__(self, client: Client, height: int) -> None:
        self._client = client
        self._height = height
        self._cache: dict[bytes, bytes | None] = {}

    def get(self, key: bytes) -> bytes | None:
        if key not in self._cache:
            self._cache[key] = self._client.get_verified(key, height=self._height)
        return self._cache[key]


class RemoteLedger:
    """The identity services' LedgerReader over a node's REST API."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def height(self) -> int:
        return self._client.status().height

    def state_at(self, height: int) -> RemoteState:
        return RemoteState(self._client, height)


class IdentityClient(Client):
    """A node client with the identity endpoints; `token` is an issuer office's operator token."""

    def __init__(self, base_url: str = DEFAULT_URL, *, token: str | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S, transport: httpx.BaseTransport | None = None) -> None:
        super().__init__(base_url, timeout_s, transport)
        self.token = token
        self.ledger = RemoteLedger(self)

    def __enter__(self) -> "IdentityClient":
        return self

    def _json(self, method: str, path: str, body: Any = None, params: Mapping[str, Any] | None = None,
              operator: bool = False, timeout_s: float | None = None) -> Any:
        headers = dict(_JSON) if body is not None else {}
        if operator and self.token:
            headers["authorization"] = f"Bearer {self.token}"
        response = self._http.request(method, path, params=params, headers=headers,
                                      content=None if body is None else msgspec.json.encode(body),
                                      timeout=httpx.USE_CLIENT_DEFAULT if timeout_s is None else timeout_s)
        _raise_for(response)
        return msgspec.json.decode(response.content)

    # -- the ledger ------------------------------------------------------------------------------

    def resolve_did(self, did: str, height: int = 0) -> dict[str, Any]:
        """The W3C DID resolution result (ApiError 404 if the DID was never created)."""
        return self._json("GET", f"/dids/{did}", params={"height": height})

    def get_schema(self, schema_id: str, height: int = 0) -> dict[str, Any]:
        """{'schema', 'height'}: an anchored schema as AnonCreds JSON and where it was anchored."""
        return self._json("GET", f"/schemas/{_path(schema_id)}", params={"height": height})

    def get_cred_def(self, cred_def_id: str, height: int = 0) -> dict[str, Any]:
        """{'cred_def', 'height'}."""
        return self._json("GET", f"/cred-defs/{_path(cred_def_id)}", params={"height": height})

    def get_rev_reg_def(self, rev_reg_id: str, height: int = 0) -> dict[str, Any]:
        """{'rev_reg_def', 'height'}."""
        return self._json("GET", f"/rev-regs/{_path(rev_reg_id)}", params={"height": height})

    def get_status_list(self, rev_reg_id: str, timestamp: int | None = None, height: int = 0) -> dict[str, Any]:
        """{'status_list'}: the registry's latest status list at `height`, or the one anchored at `timestamp`."""
        params = {"height": height} if timestamp is None else {"height": height, "timestamp": timestamp}
        return self._json("GET", f"/status-lists/{_path(rev_reg_id)}", params=params)

    def get_trusted_issuers(self, credential_type: str = "", did: str = "") -> list[dict[str, Any]]:
        """Accreditations [{'did', 'credential_type', 'height'}], optionally filtered."""
        params = {k: v for k, v in (("credential_type", credential_type), ("did", did)) if v}
        return self._json("GET", "/trusted-issuers", params=params)["accreditations"]

    def get_device(self, did: str, height: int = 0) -> dict[str, Any]:
        """A device's registry record (owner as a pseudonymous account)."""
        return self._json("GET", f"/devices/{did}", params={"height": height})

    def verify_device_message(self, did: str, payload: bytes, signature: bytes) -> dict[str, Any]:
        """{'valid', 'reason'}: did the device's current key sign the payload?"""
        body = DeviceMessageBody(payload=payload.hex(), signature=signature.hex())
        return self._json("POST", f"/devices/{did}/verify", body)

    # -- issuers (offices) -----------------------------------------------------------------------

    def list_issuers(self) -> list[dict[str, Any]]:
        """The issuers the node hosts: DID, name, credential types, anchored ids."""
        return self._json("GET", "/issuers")["issuers"]

    def get_issuer(self, did: str) -> dict[str, Any]:
        return self._json("GET", f"/issuers/{did}")

    def publish(self, issuer: str, credential_type: str, timeout_s: float = PUBLISH_TIMEOUT_S, wait: bool = True,
                on_progress: Callable[[dict[str, Any]], None] | None = None,
                poll_s: float = PUBLISH_POLL_S) -> dict[str, Any]:
        """Operator: publish a credential type (the node works in the background); its publication state.

        With `wait` (the default) poll until it is published (its ids are in the answer), calling
        `on_progress` with each state; raise PublicationError if it failed or `timeout_s` passed.
        Without, answer the state at once ("preparing", or "published" if it already was).
        """
        answer = self._json("POST", f"/issuers/{issuer}/publish", PublishBody(credential_type=credential_type),
                            operator=True)
        state = msgspec.to_builtins(msgspec.convert(answer, PublicationView))
        deadline = time.monotonic() + timeout_s
        while wait:
            if on_progress is not None:
                on_progress(state)
            if state["state"] == "published":
                break
            if state["state"] != "preparing":
                raise PublicationError(f"publication of {credential_type}: {state['state']}: {state['reason']}", state)
            if time.monotonic() >= deadline:
                raise PublicationError(f"publication of {credential_type}: still preparing ({state['step']}, "
                                       f"{state['percent']}%) after {timeout_s:g} s", state)
            time.sleep(poll_s)
            state = self.get_publication(issuer, credential_type)
        return state

    def get_publication(self, issuer: str, credential_type: str) -> dict[str, Any]:
        """A credential type's publication state (PublicationView's fields), from GET /issuers/{did}."""
        views = self.get_issuer(issuer).get("publications", {})
        if credential_type not in views:
            raise PublicationError(f"credential_type: {issuer} does not issue {credential_type!r}", {})
        return msgspec.to_builtins(msgspec.convert(views[credential_type], PublicationView))

    def create_offer(self, issuer: str, credential_type: str, values: Mapping[str, Any],
                     reference: str) -> dict[str, Any]:
        """Operator: a pre-authorised offer for a checked person's values; hand it to the holder."""
        body = OfferBody(credential_type=credential_type, values=dict(values), reference=reference)
        return self._json("POST", f"/issuers/{issuer}/offers", body, operator=True)

    def revoke(self, issuer: str, references: Sequence[str]) -> dict[str, Any]:
        """Operator: revoke by the office's references; {'revoked', 'height'} of the status-list update."""
        return self._json("POST", f"/issuers/{issuer}/revocations", RevokeBody(references=list(references)),
                          operator=True, timeout_s=120.0)

    def get_tails(self, issuer: str, tails_hash: str) -> bytes:
        """A tails file's bytes."""
        response = self._http.get(f"/issuers/{issuer}/tails/{tails_hash}")
        _raise_for(response)
        return response.content

    # -- holders ---------------------------------------------------------------------------------

    def fetch_tails(self, location: str) -> bytes:
        """Tails bytes from their anchored URL, else from this node under the same path (hash checked by the caller)."""
        try:
            response = httpx.get(location, timeout=DEFAULT_TIMEOUT_S)
            if response.status_code == 200:
                return response.content[:MAX_TAILS_BYTES + 1]
        except httpx.HTTPError:
            pass
        response = self._http.get(urlsplit(location).path)
        _raise_for(response)
        return response.content[:MAX_TAILS_BYTES + 1]

    def open_wallet(self, path: Path | str, passphrase: str, create: bool = False,
                    tails_cache: Path | str | None = None) -> Wallet:
        """A wallet file (created if asked and absent) that fetches tails files through this client."""
        fetcher = TailsFetcher(tails_cache, transport=self.fetch_tails)
        if create and not Path(path).exists():
            return Wallet.create(path, passphrase, fetcher)
        return Wallet.open(path, passphrase, fetcher)

    def request_credential(self, wallet: Wallet, offer: Mapping[str, Any]) -> dict[str, Any]:
        """The holder's credential request for an offer (the definition is read from the ledger)."""
        return wallet.request_credential(offer, self.ledger)

    def submit_credential_request(self, issuer: str, request: Mapping[str, Any]) -> dict[str, Any]:
        """Send a request answering a pre-authorised offer to its issuer; the credential message."""
        return self._json("POST", f"/issuers/{issuer}/credentials", dict(request))

    def obtain_credential(self, wallet: Wallet, offer: Mapping[str, Any]) -> str:
        """Request, receive, check and store the credential of a pre-authorised offer; its local id."""
        request = self.request_credential(wallet, offer)
        credential = self.submit_credential_request(str(offer["issuer"]), request)
        return wallet.store_credential(credential, self.ledger)

    def present(self, wallet: Wallet, request: Mapping[str, Any]) -> str:
        """A presentation answering a verifier's request, proven against the ledger at its height."""
        return wallet.present(request, self.ledger)

    # -- verifiers -------------------------------------------------------------------------------

    def create_request(self, credential_type: str, reveal: Sequence[str] = (),
                       predicates: Sequence[tuple[str, str, int]] = (), name: str = "presentation-request",
                       non_revoked: bool = True) -> dict[str, Any]:
        """A presentation request from the node's verifier, pinned to the current height."""
        wanted = [Predicate(name=n, p_type=p, p_value=int(v)) for n, p, v in predicates]
        body = PresentationRequestBody(credential_type=credential_type, reveal=list(reveal), predicates=wanted,
                                       name=name, non_revoked=non_revoked)
        return self._json("POST", "/verifier/requests", body)

    def resident_request(self, today: int, reveal: Sequence[str] = ("district",), min_age: int = 18,
                         min_residence_years: int = 1) -> dict[str, Any]:
        """The city's usual check: adult, resident for `min_residence_years`, revealing only `reveal`."""
        predicates = [("birth_date", "<=", compute_years_before(today, min_age)),
                      ("resident_since", "<=", compute_years_before(today, min_residence_years))]
        return self.create_request(RESIDENT_ID, reveal, predicates, name="resident-check")

    def verify(self, request: Mapping[str, Any], presentation: str | Mapping[str, Any]) -> dict[str, Any]:
        """{'verified', 'reason', 'revealed', 'height'} from the node's verifier (each request verifies once)."""
        body = VerifyBody(request=dict(request),
                          presentation=presentation if isinstance(presentation, str) else dict(presentation))
        return self._json("POST", "/verifier/verify", body)


def _path(object_id: str) -> str:
    """An anchored object's id as a URL path (its '/' separators kept)."""
    return quote(object_id, safe="/:")
