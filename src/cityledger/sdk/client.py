"""Clients of a node's REST API: `Client` (blocking) and `AsyncClient` (asyncio), same methods.

Each call is described once as a `_Call` (method, path, parameters, body, how to read the answer);
the two clients differ only in how they send it. Errors come back as ApiError, or TxRejected when
the node refused a transaction; `get_verified` raises ProofError when a proof does not check out.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence
from urllib.parse import quote

import httpx
import msgspec

from ..core.types import address_to_str
from ..wire.batteries import PutPassportBody, ReadPassportBody, ReportBatchBody
from ..wire.dashboard import (BatteryAlertsView, ChargingPerDayView, DevicesByKindView, PaymentsPerDayView,
                              RecyclingView, RewardsView, ValidatorsView)
from ..wire.payments import (ChannelView, CounterpartyView, EscrowView, LockedView, PolicyView, VoucherCheckBody,
                             VoucherCheckView)
from ..wire.mobility import ClaimCheckBody, ClaimCheckView, ClaimView, ProgrammesView, ProgrammeView
from ..wire.owned import (EnrollmentView, OwnedChannelsView, OwnedDataSetsView, OwnedDevicesView,
                          OwnedEnrollmentsView, OwnedEscrowsView)
from ..wire.vaults import VaultErasureView, VaultLogView, VaultProofView, VaultRecordsView, VaultRequestBody
from ..wire.views import ErrorBody, SubmitBatchBody, SubmitTxBody
from .errors import ApiError, ProofError, TxRejected
from .models import (AccessLog, Account, Alerts, BatchResult, BatteryStages, Block, ChainChart, Health,
                     PassportDocument, PassportStored, QueryResult, RecycledContent, ReportBatch, ScoreModel, StateValue,
                     Status, SubmitResult, TxStatus)
from .proofs import verify_state_proof
from .txs import to_address

DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_TIMEOUT_S = 30.0
REPORTS_TIMEOUT_S = 120.0  # a report batch answers once its root is committed: verification, storage, a block
MAX_BATCH_TXS = 10_000
_JSON = {"content-type": "application/json"}
# A server may close a keep-alive connection just as a call reuses it (httpx then raises one of these
# before any answer); reads are safe to send again once, on a fresh connection. Submissions are not
# resent: whether the node saw them is unknown, and the caller decides.
_STALE_CONNECTION = (httpx.RemoteProtocolError, httpx.ReadError)
_RESENDABLE = ("GET", "HEAD")


@dataclass(frozen=True)
class _Call:
    method: str
    path: str
    read: Callable[[bytes], Any]
    params: dict[str, Any] = field(default_factory=dict)
    body: bytes | None = None
    timeout_s: float | None = None


def _decoder(kind: type) -> Callable[[bytes], Any]:
    decoder = msgspec.json.Decoder(kind)
    return decoder.decode


_READ = {kind: _decoder(kind) for kind in (Account, BatchResult, Block, Health, QueryResult, StateValue, Status,
                                          SubmitResult, TxStatus, PassportStored, PassportDocument, AccessLog,
                                          ChannelView, EscrowView, PolicyView, CounterpartyView, LockedView,
                                          OwnedDevicesView, OwnedChannelsView, OwnedEscrowsView, OwnedDataSetsView,
                                          OwnedEnrollmentsView, ProgrammeView, ProgrammesView, EnrollmentView,
                                          ClaimView, ClaimCheckView,
                                          VoucherCheckView, VaultRecordsView, VaultLogView, VaultErasureView,
                                          VaultProofView, ScoreModel, ReportBatch, Alerts, RecycledContent, ChainChart,
                                          BatteryStages)}
_CHARTS = {kind: _decoder(kind) for kind in (DevicesByKindView, PaymentsPerDayView, BatteryAlertsView, RecyclingView,
                                            RewardsView, ValidatorsView, ChargingPerDayView)}
_ERROR = msgspec.json.Decoder(ErrorBody)


def _counterparty_path(address: str | bytes) -> str:
    return f"counterparties/{address_to_str(to_address(address, 'address'))}"


def _account_path(address: str | bytes) -> str:
    return quote(address_to_str(address) if isinstance(address, (bytes, bytearray)) else address, safe="")


def _hex_id(tx_id: str | bytes) -> str:
    return tx_id.hex() if isinstance(tx_id, (bytes, bytearray)) else tx_id


def _txs_body(txs: Sequence[bytes]) -> bytes:
    return msgspec.json.encode(SubmitBatchBody(txs=[base64.b64encode(tx).decode() for tx in txs], encoding="base64"))


def _raise_for(response: httpx.Response) -> None:
    """Turn an error answer into ApiError (TxRejected when it carries a tx's check result)."""
    if response.status_code < 400:
        return
    try:
        error = _ERROR.decode(response.content).error
    except msgspec.DecodeError:  # not the API's error shape (ValidationError is a DecodeError too)
        raise ApiError(response.status_code, f"http/{response.status_code}", response.text[:500]) from None
    # The detail keeps every field the node sent, those a newer node adds included.
    detail = msgspec.json.decode(response.content)["error"]
    kind = TxRejected if error.abci_code is not None else ApiError
    raise kind(response.status_code, error.code, error.message, error.field, detail)


class _Calls:
    """The API, one method per endpoint, as _Call descriptions."""

    @staticmethod
    def submit(tx: bytes, wait: bool, timeout_s: float) -> _Call:
        body = msgspec.json.encode(SubmitTxBody(tx=base64.b64encode(tx).decode(), encoding="base64"))
        params = {"wait": "true", "timeout_s": timeout_s} if wait else {}
        return _Call("POST", "/txs", _READ[SubmitResult], params, body, timeout_s + 10 if wait else None)

    @staticmethod
    def submit_batch(txs: Sequence[bytes]) -> _Call:
        return _Call("POST", "/txs/batch", _READ[BatchResult], body=_txs_body(txs))

    @staticmethod
    def get_tx(tx_id: str | bytes) -> _Call:
        return _Call("GET", f"/txs/{_hex_id(tx_id)}", _READ[TxStatus])

    @staticmethod
    def wait(tx_id: str | bytes, timeout_s: float) -> _Call:
        return _Call("GET", f"/txs/{_hex_id(tx_id)}/wait", _READ[TxStatus], {"timeout_s": timeout_s},
                     timeout_s=timeout_s + 10)

    @staticmethod
    def get_block(height: int | None) -> _Call:
        return _Call("GET", "/blocks/latest" if height is None else f"/blocks/{int(height)}", _READ[Block])

    @staticmethod
    def get_account(address: str | bytes) -> _Call:
        return _Call("GET", f"/accounts/{to_address(address, 'address').hex()}", _READ[Account])

    @staticmethod
    def query(module: str, name: str, args: dict[str, Any]) -> _Call:
        return _Call("GET", f"/query/{module}/{name}", _READ[QueryResult], {k: str(v) for k, v in args.items()})

    @staticmethod
    def get_state(key: bytes, height: int, prove: bool) -> _Call:
        params = {"height": height, "prove": "true" if prove else "false"}
        return _Call("GET", f"/state/{bytes(key).hex()}", _READ[StateValue], params)

    @staticmethod
    def status() -> _Call:
        return _Call("GET", "/status", _READ[Status])

    @staticmethod
    def health() -> _Call:
        return _Call("GET", "/health", _READ[Health])

    @staticmethod
    def chain_chart(blocks: int) -> _Call:
        return _Call("GET", "/dashboard/data/chain", _READ[ChainChart], {"blocks": int(blocks)})

    @staticmethod
    def battery_stages() -> _Call:
        return _Call("GET", "/dashboard/data/batteries", _READ[BatteryStages])

    @staticmethod
    def chart(name: str, kind: type, params: dict | None = None) -> _Call:
        return _Call("GET", f"/dashboard/data/{name}", _CHARTS[kind], params or {})

    @staticmethod
    def put_passport(passport_id: str, body: bytes) -> _Call:
        return _Call("PUT", f"/passports/{quote(passport_id, safe='')}", _READ[PassportStored], body=body)

    @staticmethod
    def get_score_model() -> _Call:
        return _Call("GET", "/mobility/model", _READ[ScoreModel])

    @staticmethod
    def get_passport(passport_id: str) -> _Call:
        return _Call("GET", f"/passports/{quote(passport_id, safe='')}", _READ[PassportDocument])

    @staticmethod
    def read_passport(passport_id: str, body: bytes) -> _Call:
        return _Call("POST", f"/passports/{quote(passport_id, safe='')}/read", _READ[PassportDocument], body=body)

    @staticmethod
    def get_passport_log(passport_id: str, auth: Mapping[str, Any], after_seq: int) -> _Call:
        return _Call("GET", f"/passports/{quote(passport_id, safe='')}/log", _READ[AccessLog],
                     {**auth, "after_seq": after_seq})

    @staticmethod
    def get_payments(path: str, kind: type, height: int) -> _Call:
        return _Call("GET", f"/payments/{path}", _READ[kind], {"height": height})

    @staticmethod
    def owned(address: str | bytes, segment: str, kind: type, after: str) -> _Call:
        return _Call("GET", f"/accounts/{_account_path(address)}/{segment}", _READ[kind], {"after": after})

    @staticmethod
    def get_programmes(before: int | None, height: int) -> _Call:
        params = {"height": height} if before is None else {"before": int(before), "height": height}
        return _Call("GET", "/mobility/programmes", _READ[ProgrammesView], params)

    @staticmethod
    def get_programme(programme_id: int, height: int) -> _Call:
        return _Call("GET", f"/mobility/programmes/{int(programme_id)}", _READ[ProgrammeView], {"height": height})

    @staticmethod
    def get_enrollment(programme_id: int, account: str | bytes, period: int | None, height: int) -> _Call:
        params = {"height": height} if period is None else {"period": int(period), "height": height}
        return _Call("GET", f"/mobility/programmes/{int(programme_id)}/enrollments/{_account_path(account)}",
                     _READ[EnrollmentView], params)

    @staticmethod
    def get_claim(programme_id: int, commitment: str | bytes, height: int) -> _Call:
        text = commitment.hex() if isinstance(commitment, (bytes, bytearray)) else quote(commitment, safe="")
        return _Call("GET", f"/mobility/programmes/{int(programme_id)}/claims/{text}", _READ[ClaimView],
                     {"height": height})

    @staticmethod
    def check_claim(body: bytes) -> _Call:
        return _Call("POST", "/mobility/claims/check", _READ[ClaimCheckView], body=body)

    @staticmethod
    def check_voucher(body: bytes) -> _Call:
        return _Call("POST", "/payments/vouchers/check", _READ[VoucherCheckView], body=body)

    @staticmethod
    def vault(action: str, body: VaultRequestBody) -> _Call:
        kind = {"read": VaultRecordsView, "consumer-read": VaultRecordsView, "log": VaultLogView,
                "erase": VaultErasureView, "proof": VaultProofView}[action]
        return _Call("POST", f"/vaults/{action}", _READ[kind], body=msgspec.json.encode(body))

    @staticmethod
    def post_reports(body: bytes) -> _Call:
        return _Call("POST", "/passports/reports", _READ[ReportBatch], body=body, timeout_s=REPORTS_TIMEOUT_S)

    @staticmethod
    def get_recycled_content(passport_id: str) -> _Call:
        return _Call("GET", f"/passports/{quote(passport_id, safe='')}/recycled_content", _READ[RecycledContent])

    @staticmethod
    def get_passport_alerts(passport_id: str, auth: Mapping[str, Any]) -> _Call:
        return _Call("GET", f"/passports/{quote(passport_id, safe='')}/alerts", _READ[Alerts], dict(auth))


def check_verified(key: bytes, height: int, answer: StateValue, app_hash: bytes | str | None) -> bytes | None:
    """The value of a proven state answer, or ProofError if the proof does not show it."""
    if answer.key != bytes(key).hex():
        raise ProofError(f"key: the node answered for key {answer.key}, not {bytes(key).hex()}")
    if height and answer.height != height:
        raise ProofError(f"height: the node answered for height {answer.height}, not {height}")
    if answer.proof_bytes is None:
        raise ProofError("proof: the node sent no proof")
    root = answer.app_hash if app_hash is None else app_hash
    value = answer.value_bytes if answer.exists else None
    if not verify_state_proof(bytes(key), value, answer.proof_bytes, root):
        raise ProofError(f"proof: does not show key {bytes(key).hex()} = {answer.value} under app hash "
                         f"{root if isinstance(root, str) else bytes(root).hex()} at height {answer.height}")
    return value


class Client:
    """A blocking client of one node: `with Client(url) as node: node.status()`."""

    def __init__(self, base_url: str = DEFAULT_URL, timeout_s: float = DEFAULT_TIMEOUT_S,
                 transport: httpx.BaseTransport | None = None) -> None:
        self._http = httpx.Client(base_url=base_url, timeout=timeout_s, transport=transport)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _do(self, call: _Call) -> Any:
        timeout = httpx.USE_CLIENT_DEFAULT if call.timeout_s is None else call.timeout_s

        def send() -> httpx.Response:
            return self._http.request(call.method, call.path, params=call.params, content=call.body,
                                      headers=_JSON if call.body is not None else None, timeout=timeout)

        try:
            response = send()
        except _STALE_CONNECTION:
            if call.method not in _RESENDABLE:
                raise
            response = send()
        _raise_for(response)
        return call.read(response.content)

    def submit(self, tx: bytes, *, wait: bool = False, timeout_s: float = DEFAULT_TIMEOUT_S) -> SubmitResult:
        """Submit one tx; with wait, return once it is committed (or timeout_s passed)."""
        return self._do(_Calls.submit(tx, wait, timeout_s))

    def submit_batch(self, txs: Sequence[bytes]) -> BatchResult:
        """Submit many txs (sent in requests of at most 10,000); one check result per tx, in order."""
        parts = [self._do(_Calls.submit_batch(txs[i:i + MAX_BATCH_TXS])) for i in range(0, len(txs), MAX_BATCH_TXS)]
        return _join_batches(parts)

    def wait(self, tx_id: str | bytes, timeout_s: float = DEFAULT_TIMEOUT_S) -> TxStatus:
        """Wait until a tx (by id, see txs.tx_id) is committed or leaves the mempool, or timeout_s passes."""
        return self._do(_Calls.wait(tx_id, timeout_s))

    def get_tx(self, tx_id: str | bytes) -> TxStatus:
        return self._do(_Calls.get_tx(tx_id))

    def get_block(self, height: int | None = None) -> Block:
        """A block (the latest if height is None)."""
        return self._do(_Calls.get_block(height))

    def get_account(self, address: str | bytes) -> Account:
        return self._do(_Calls.get_account(address))

    def get_nonce(self, address: str | bytes, pending: bool = True) -> int:
        """The nonce the account's next tx must carry (counting its txs in the mempool if pending)."""
        account = self.get_account(address)
        return account.pending_nonce if pending else account.nonce

    def query(self, module: str, name: str, **args: Any) -> Any:
        """A module query's result, e.g. query('bank', 'balance', address='city…')."""
        return self._do(_Calls.query(module, name, args)).result

    def get_state(self, key: bytes, height: int = 0, prove: bool = False) -> StateValue:
        return self._do(_Calls.get_state(key, height, prove))

    def get_verified(self, key: bytes, height: int = 0, app_hash: bytes | str | None = None) -> bytes | None:
        """A state value (None if absent) whose proof checks against `app_hash`, else the node's reported one."""
        return check_verified(key, height, self.get_state(key, height, prove=True), app_hash)

    def status(self) -> Status:
        return self._do(_Calls.status())

    def health(self) -> Health:
        return self._do(_Calls.health())

    def chain_chart(self, blocks: int = 100) -> ChainChart:
        """The dashboard's chain data: the last `blocks` blocks' intervals, txs and messages by module."""
        return self._do(_Calls.chain_chart(blocks))

    def validators_chart(self, blocks: int = 100) -> ValidatorsView:
        """The dashboard's validator set and who signed the last `blocks` commits the node's engine saw."""
        return self._do(_Calls.chart("validators", ValidatorsView, {"blocks": int(blocks)}))

    def charging_per_day(self, days: int = 30) -> ChargingPerDayView:
        """The dashboard's charging sessions and energy per day, from the node's CSMS (404 without one)."""
        return self._do(_Calls.chart("charging", ChargingPerDayView, {"days": int(days)}))

    def battery_stages(self) -> BatteryStages:
        """The dashboard's battery data: passports by life-cycle stage."""
        return self._do(_Calls.battery_stages())

    def device_kinds(self) -> DevicesByKindView:
        """The dashboard's devices by kind."""
        return self._do(_Calls.chart("devices", DevicesByKindView))

    def payments_per_day(self, days: int = 30) -> PaymentsPerDayView:
        """The dashboard's payments per day: vouchers redeemed (chargers: charging) and paid, channels opened."""
        return self._do(_Calls.chart("payments", PaymentsPerDayView, {"days": int(days)}))

    def battery_alerts(self) -> BatteryAlertsView:
        """The dashboard's passports near end of first life, counted by stage."""
        return self._do(_Calls.chart("battery-alerts", BatteryAlertsView))

    def recycling(self) -> RecyclingView:
        """The dashboard's recycling totals against the Annex XII targets."""
        return self._do(_Calls.chart("recycling", RecyclingView))

    def reward_budgets(self) -> RewardsView:
        """The dashboard's reward programmes: budget, remaining, claims."""
        return self._do(_Calls.chart("rewards", RewardsView))

    def put_passport(self, passport_id: str, body: PutPassportBody) -> PassportStored:
        """Store a passport document (body from sdk.passports.sign_put); the tier hashes to anchor."""
        return self._do(_Calls.put_passport(passport_id, msgspec.json.encode(body)))

    def get_score_model(self) -> ScoreModel:
        """The driving score's formula and the circuit's pinned parameters (docs/DRIVING_SCORE.md)."""
        return self._do(_Calls.get_score_model())

    def get_passport(self, passport_id: str) -> PassportDocument:
        """A passport's public tier."""
        return self._do(_Calls.get_passport(passport_id))

    def read_passport(self, passport_id: str, body: ReadPassportBody) -> PassportDocument:
        """A restricted tier, against a presentation of its credential (sdk.passports.read_body)."""
        return self._do(_Calls.read_passport(passport_id, msgspec.json.encode(body)))

    def get_passport_log(self, passport_id: str, auth: Mapping[str, Any], after_seq: int = 0) -> AccessLog:
        """A passport's access log from `after_seq`, to its operator or battery owner (auth: sign_log_read)."""
        return self._do(_Calls.get_passport_log(passport_id, auth, after_seq))

    def get_channel(self, channel_id: int, height: int = 0) -> ChannelView:
        """A payment channel (height 0: the latest)."""
        return self._do(_Calls.get_payments(f"channels/{int(channel_id)}", ChannelView, height))

    def get_escrow(self, escrow_id: int, height: int = 0) -> EscrowView:
        """An escrow, until released or refunded."""
        return self._do(_Calls.get_payments(f"escrows/{int(escrow_id)}", EscrowView, height))

    def get_policy(self, device: str, height: int = 0) -> PolicyView:
        """A device's spending policy, and what it spent on that block's day."""
        return self._do(_Calls.get_payments(f"policies/{quote(device, safe='')}", PolicyView, height))

    def get_counterparty(self, address: str | bytes, height: int = 0) -> CounterpartyView:
        """The counterparty kind an account declared."""
        return self._do(_Calls.get_payments(_counterparty_path(address), CounterpartyView, height))

    def get_locked(self, height: int = 0) -> LockedView:
        """Credits locked in escrows and channels."""
        return self._do(_Calls.get_payments("locked", LockedView, height))

    def devices_of(self, address: str | bytes, after: str = "") -> OwnedDevicesView:
        """A page of the devices an account owns or is offered (`next` is the `after` of the next page)."""
        return self._do(_Calls.owned(address, "devices", OwnedDevicesView, after))

    def channels_of(self, address: str | bytes, after: str = "") -> OwnedChannelsView:
        """A page of the payment channels an account pays into or is paid from."""
        return self._do(_Calls.owned(address, "channels", OwnedChannelsView, after))

    def escrows_of(self, address: str | bytes, after: str = "") -> OwnedEscrowsView:
        """A page of the open escrows an account locked or is to receive."""
        return self._do(_Calls.owned(address, "escrows", OwnedEscrowsView, after))

    def data_sets_of(self, address: str | bytes, after: str = "") -> OwnedDataSetsView:
        """A page of the data sets an account owns."""
        return self._do(_Calls.owned(address, "data-sets", OwnedDataSetsView, after))

    def enrollments_of(self, address: str | bytes, after: str = "") -> OwnedEnrollmentsView:
        """A page of an account's reward enrollments (rewards paid and trips, per programme period)."""
        return self._do(_Calls.owned(address, "enrollments", OwnedEnrollmentsView, after))

    def get_programmes(self, before: int | None = None, height: int = 0) -> ProgrammesView:
        """A page of reward programmes, newest first, below id `before` (`next` is the next page's before)."""
        return self._do(_Calls.get_programmes(before, height))

    def get_programme(self, programme_id: int, height: int = 0) -> ProgrammeView:
        """A reward programme's terms, budget and what remains (height 0: the latest)."""
        return self._do(_Calls.get_programme(programme_id, height))

    def get_enrollment(self, programme_id: int, account: str | bytes, period: int | None = None,
                       height: int = 0) -> EnrollmentView:
        """What an enrolled account was paid in a programme period (None: the period `height` falls in)."""
        return self._do(_Calls.get_enrollment(programme_id, account, period, height))

    def get_claim(self, programme_id: int, commitment: str | bytes, height: int = 0) -> ClaimView:
        """A paid claim by its commitment (bytes or 64 hex digits): score, km, reward, height."""
        return self._do(_Calls.get_claim(programme_id, commitment, height))

    def check_claim(self, body: ClaimCheckBody) -> ClaimCheckView:
        """Would the chain pay this claim now, and how much (ApiError 409 naming why not)?
        Build the body with sdk.mobility.claim_check_body."""
        return self._do(_Calls.check_claim(msgspec.json.encode(body)))

    def check_voucher(self, body: VoucherCheckBody) -> VoucherCheckView:
        """Would the chain redeem this voucher now (ApiError 409 naming why not)?"""
        return self._do(_Calls.check_voucher(msgspec.json.encode(body)))

    def vault_read(self, body: VaultRequestBody) -> VaultRecordsView:
        """The owner's sealed records (body: sdk.vaults.sign_request(..., "read", ...)); open with open_records."""
        return self._do(_Calls.vault("read", body))

    def vault_consumer_read(self, body: VaultRequestBody) -> VaultRecordsView:
        """A consumer's read under its consent (sign_request(..., "consumer-read", ...)); logged."""
        return self._do(_Calls.vault("consumer-read", body))

    def vault_log(self, body: VaultRequestBody) -> VaultLogView:
        """A page of the owner's access log (sign_request(..., "log", ...)); check it with verify_vault_log."""
        return self._do(_Calls.vault("log", body))

    def vault_erase(self, body: VaultRequestBody) -> VaultErasureView:
        """Crypto-shred a data set, or the whole vault (sign_request(..., "erase", ...)); logged."""
        return self._do(_Calls.vault("erase", body))

    def vault_proof(self, body: VaultRequestBody) -> VaultProofView:
        """One of the owner's records under its anchored root (sign_request(..., "proof", ..., record_id=...));
        anyone checks it with sdk.vaults.verify_inclusion."""
        return self._do(_Calls.vault("proof", body))

    def post_reports(self, body: ReportBatchBody) -> ReportBatch:
        """A batch of BMS-signed SoH reports (sdk.passports.report_item), committed in one tx."""
        return self._do(_Calls.post_reports(msgspec.json.encode(body)))

    def get_passport_alerts(self, passport_id: str, auth: Mapping[str, Any]) -> Alerts:
        """A passport's end-of-first-life alerts, to its operator or battery owner (auth: sign_log_read)."""
        return self._do(_Calls.get_passport_alerts(passport_id, auth))

    def get_recycled_content(self, passport_id: str) -> RecycledContent:
        """A passport's declared recycled content against Art. 8's minimums (public)."""
        return self._do(_Calls.get_recycled_content(passport_id))


class AsyncClient:
    """The asyncio client: `async with AsyncClient(url) as node: await node.status()`."""

    def __init__(self, base_url: str = DEFAULT_URL, timeout_s: float = DEFAULT_TIMEOUT_S,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._http = httpx.AsyncClient(base_url=base_url, timeout=timeout_s, transport=transport)

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _do(self, call: _Call) -> Any:
        timeout = httpx.USE_CLIENT_DEFAULT if call.timeout_s is None else call.timeout_s

        async def send() -> httpx.Response:
            return await self._http.request(call.method, call.path, params=call.params, content=call.body,
                                            headers=_JSON if call.body is not None else None, timeout=timeout)

        try:
            response = await send()
        except _STALE_CONNECTION:
            if call.method not in _RESENDABLE:
                raise
            response = await send()
        _raise_for(response)
        return call.read(response.content)

    async def submit(self, tx: bytes, *, wait: bool = False, timeout_s: float = DEFAULT_TIMEOUT_S) -> SubmitResult:
        return await self._do(_Calls.submit(tx, wait, timeout_s))

    async def submit_batch(self, txs: Sequence[bytes]) -> BatchResult:
        parts = [await self._do(_Calls.submit_batch(txs[i:i + MAX_BATCH_TXS]))
                 for i in range(0, len(txs), MAX_BATCH_TXS)]
        return _join_batches(parts)

    async def wait(self, tx_id: str | bytes, timeout_s: float = DEFAULT_TIMEOUT_S) -> TxStatus:
        return await self._do(_Calls.wait(tx_id, timeout_s))

    async def get_tx(self, tx_id: str | bytes) -> TxStatus:
        return await self._do(_Calls.get_tx(tx_id))

    async def get_block(self, height: int | None = None) -> Block:
        return await self._do(_Calls.get_block(height))

    async def get_account(self, address: str | bytes) -> Account:
        return await self._do(_Calls.get_account(address))

    async def get_nonce(self, address: str | bytes, pending: bool = True) -> int:
        account = await self.get_account(address)
        return account.pending_nonce if pending else account.nonce

    async def query(self, module: str, name: str, **args: Any) -> Any:
        return (await self._do(_Calls.query(module, name, args))).result

    async def get_state(self, key: bytes, height: int = 0, prove: bool = False) -> StateValue:
        return await self._do(_Calls.get_state(key, height, prove))

    async def get_verified(self, key: bytes, height: int = 0, app_hash: bytes | str | None = None) -> bytes | None:
        return check_verified(key, height, await self.get_state(key, height, prove=True), app_hash)

    async def status(self) -> Status:
        return await self._do(_Calls.status())

    async def health(self) -> Health:
        return await self._do(_Calls.health())

    async def chain_chart(self, blocks: int = 100) -> ChainChart:
        return await self._do(_Calls.chain_chart(blocks))

    async def validators_chart(self, blocks: int = 100) -> ValidatorsView:
        return await self._do(_Calls.chart("validators", ValidatorsView, {"blocks": int(blocks)}))

    async def charging_per_day(self, days: int = 30) -> ChargingPerDayView:
        return await self._do(_Calls.chart("charging", ChargingPerDayView, {"days": int(days)}))

    async def battery_stages(self) -> BatteryStages:
        return await self._do(_Calls.battery_stages())

    async def device_kinds(self) -> DevicesByKindView:
        return await self._do(_Calls.chart("devices", DevicesByKindView))

    async def payments_per_day(self, days: int = 30) -> PaymentsPerDayView:
        return await self._do(_Calls.chart("payments", PaymentsPerDayView, {"days": int(days)}))

    async def battery_alerts(self) -> BatteryAlertsView:
        return await self._do(_Calls.chart("battery-alerts", BatteryAlertsView))

    async def recycling(self) -> RecyclingView:
        return await self._do(_Calls.chart("recycling", RecyclingView))

    async def reward_budgets(self) -> RewardsView:
        return await self._do(_Calls.chart("rewards", RewardsView))

    async def put_passport(self, passport_id: str, body: PutPassportBody) -> PassportStored:
        return await self._do(_Calls.put_passport(passport_id, msgspec.json.encode(body)))

    async def get_score_model(self) -> ScoreModel:
        return await self._do(_Calls.get_score_model())

    async def get_passport(self, passport_id: str) -> PassportDocument:
        return await self._do(_Calls.get_passport(passport_id))

    async def read_passport(self, passport_id: str, body: ReadPassportBody) -> PassportDocument:
        return await self._do(_Calls.read_passport(passport_id, msgspec.json.encode(body)))

    async def get_passport_log(self, passport_id: str, auth: Mapping[str, Any], after_seq: int = 0) -> AccessLog:
        return await self._do(_Calls.get_passport_log(passport_id, auth, after_seq))

    async def get_channel(self, channel_id: int, height: int = 0) -> ChannelView:
        return await self._do(_Calls.get_payments(f"channels/{int(channel_id)}", ChannelView, height))

    async def get_escrow(self, escrow_id: int, height: int = 0) -> EscrowView:
        return await self._do(_Calls.get_payments(f"escrows/{int(escrow_id)}", EscrowView, height))

    async def get_policy(self, device: str, height: int = 0) -> PolicyView:
        return await self._do(_Calls.get_payments(f"policies/{quote(device, safe='')}", PolicyView, height))

    async def get_counterparty(self, address: str | bytes, height: int = 0) -> CounterpartyView:
        return await self._do(_Calls.get_payments(_counterparty_path(address), CounterpartyView, height))

    async def get_locked(self, height: int = 0) -> LockedView:
        return await self._do(_Calls.get_payments("locked", LockedView, height))

    async def devices_of(self, address: str | bytes, after: str = "") -> OwnedDevicesView:
        return await self._do(_Calls.owned(address, "devices", OwnedDevicesView, after))

    async def channels_of(self, address: str | bytes, after: str = "") -> OwnedChannelsView:
        return await self._do(_Calls.owned(address, "channels", OwnedChannelsView, after))

    async def escrows_of(self, address: str | bytes, after: str = "") -> OwnedEscrowsView:
        return await self._do(_Calls.owned(address, "escrows", OwnedEscrowsView, after))

    async def data_sets_of(self, address: str | bytes, after: str = "") -> OwnedDataSetsView:
        return await self._do(_Calls.owned(address, "data-sets", OwnedDataSetsView, after))

    async def enrollments_of(self, address: str | bytes, after: str = "") -> OwnedEnrollmentsView:
        return await self._do(_Calls.owned(address, "enrollments", OwnedEnrollmentsView, after))

    async def get_programmes(self, before: int | None = None, height: int = 0) -> ProgrammesView:
        return await self._do(_Calls.get_programmes(before, height))

    async def get_programme(self, programme_id: int, height: int = 0) -> ProgrammeView:
        return await self._do(_Calls.get_programme(programme_id, height))

    async def get_enrollment(self, programme_id: int, account: str | bytes, period: int | None = None,
                             height: int = 0) -> EnrollmentView:
        return await self._do(_Calls.get_enrollment(programme_id, account, period, height))

    async def get_claim(self, programme_id: int, commitment: str | bytes, height: int = 0) -> ClaimView:
        return await self._do(_Calls.get_claim(programme_id, commitment, height))

    async def check_claim(self, body: ClaimCheckBody) -> ClaimCheckView:
        return await self._do(_Calls.check_claim(msgspec.json.encode(body)))

    async def check_voucher(self, body: VoucherCheckBody) -> VoucherCheckView:
        return await self._do(_Calls.check_voucher(msgspec.json.encode(body)))

    async def vault_read(self, body: VaultRequestBody) -> VaultRecordsView:
        return await self._do(_Calls.vault("read", body))

    async def vault_consumer_read(self, body: VaultRequestBody) -> VaultRecordsView:
        return await self._do(_Calls.vault("consumer-read", body))

    async def vault_log(self, body: VaultRequestBody) -> VaultLogView:
        return await self._do(_Calls.vault("log", body))

    async def vault_erase(self, body: VaultRequestBody) -> VaultErasureView:
        return await self._do(_Calls.vault("erase", body))

    async def vault_proof(self, body: VaultRequestBody) -> VaultProofView:
        return await self._do(_Calls.vault("proof", body))

    async def post_reports(self, body: ReportBatchBody) -> ReportBatch:
        return await self._do(_Calls.post_reports(msgspec.json.encode(body)))

    async def get_passport_alerts(self, passport_id: str, auth: Mapping[str, Any]) -> Alerts:
        return await self._do(_Calls.get_passport_alerts(passport_id, auth))

    async def get_recycled_content(self, passport_id: str) -> RecycledContent:
        return await self._do(_Calls.get_recycled_content(passport_id))


def _join_batches(parts: list[BatchResult]) -> BatchResult:
    results = [result for part in parts for result in part.results]
    accepted = sum(part.accepted for part in parts)
    return BatchResult(accepted=accepted, rejected=len(results) - accepted, results=results)
