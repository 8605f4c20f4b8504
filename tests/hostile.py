"""Hostile inputs for the state machine (this module holds no tests).

`mutations` walks a message's fields (into nested structs and the first element of lists) and
yields one copy per hostile value: surrounding whitespace and newlines, empty and maximal sizes,
negative and huge integers, invalid UTF-8, deep JSON nesting, 1e400 and NaN. `HostileWorld` is a
city whose state lets every message type reach its deepest checks: an accredited issuer with a
revocable credential definition, a manufacturer, a bound device with a pending transfer, an
unbound device, an open proposal, and a DID to update.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import msgspec

from hostile_batteries import BatteryTargets
from hostile_mobility import MobilityTargets
from test_identity_fixtures import City
from cityledger.app import abc
from cityledger.core.encoding import encode
from cityledger.core.errors import ERR_HANDLER_FAILED
from cityledger.core.keys import PrivateKey
from cityledger.core.tx import build_tx
from cityledger.core.types import address_to_str
from cityledger.modules.bank import MultiSend, Output, Transfer
from cityledger.modules.consent import (
    GATEWAY_TYPE,
    VAULT_SERVICE_TYPE,
    ZERO_HEAD,
    AnchorAccessLog,
    AnchorGatewayRoot,
    AnchorRecordsRoot,
    GrantConsent,
    RegisterDataSet,
    RegisterVaultKey,
    RevokeConsent,
    compute_data_set_id,
    get_data_set,
    get_gateway_last_interval,
    get_log_head,
)
from cityledger.modules.devices import AcceptTransfer, BindDevice, Decommission, OfferTransfer, compute_device_did
from cityledger.modules.governance import SubmitProposal, Vote
from cityledger.modules.governance.keys import NEXT_PROPOSAL_ID_KEY
from cityledger.modules.governance.messages import ParamChange
from cityledger.modules.identity import (
    PURPOSE_ASSERTION,
    PURPOSE_AUTHENTICATION,
    AnchorCredDef,
    AnchorRevRegDef,
    AnchorSchema,
    CreateDid,
    DeactivateDid,
    Service,
    UpdateDid,
    UpdateStatusList,
    VerificationKey,
    compute_did,
    get_did,
    get_status_list,
)
from cityledger.modules.payments import (
    CloseChannel,
    DeclareCounterparty,
    FinalizeChannel,
    FreezeDevice,
    LockEscrow,
    OpenChannel,
    RedeemVoucher,
    RefundEscrow,
    ReleaseEscrow,
    SetPolicy,
    StartClose,
    TopUpChannel,
    get_channel,
    sign_voucher,
)
from cityledger.modules.payments.handlers import get_counter
from cityledger.modules.payments.keys import NEXT_CHANNEL_ID_KEY
from cityledger.offchain.identity import DEVICE_MANUFACTURER, RESIDENT_ID
from cityledger.offchain.identity.devices import build_registration, prove_ownership

INVALID_UTF8_MARK = "\x01HOSTILE\x02"  # replaced in the encoded tx by as many 0xff bytes
MAX_STRING = "x" * 60_000
LONG_LIST = 300  # more than any MAX_ count of a list in a message
DEEP_JSON = b"[" * 5_000 + b"]" * 5_000
NESTED_OBJECTS = b'{"a":' * 1_000 + b"1" + b"}" * 1_000  # about 4 KB of nested JSON
HUGE_FLOAT_JSON = b'{"identifiers":[{"timestamp":1e400}]}'
HUGE_INTS = (-1, 0, 2**63, 2**64 - 1, -(2**63))
JSON_FIELDS = {"value", "public_keys", "presentation", "action"}


@dataclass(frozen=True)
class Variant:
    """A hostile copy of a message: which field changed, and whether it must be rejected."""

    path: str
    message: Any
    must_reject: bool


def _string_values(value: str) -> list[str]:
    return [value + "\n", " " + value, value + " ", "", MAX_STRING, value + "\x00", INVALID_UTF8_MARK]


def _bytes_values(value: bytes) -> list[bytes]:
    return [b"", value + b"\n", b"x" * 200_000, DEEP_JSON, NESTED_OBJECTS, HUGE_FLOAT_JSON, b"[NaN]", b"\xff\xfe"]


def mutations(value: Any, path: str = "", json_field: bool = False) -> Iterator[tuple[str, Any, bool]]:
    """(path, hostile value, must be rejected) for a value and everything inside it."""
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        for bad in HUGE_INTS:
            yield path, bad, True
    elif isinstance(value, str):
        for bad in _string_values(value):
            yield path, bad, True
    elif isinstance(value, bytes):
        for bad in _bytes_values(value):
            yield path, bad, json_field
    elif isinstance(value, list):
        yield path, [], False
        if value:
            yield path, [value[0]] * LONG_LIST, False
            for sub_path, bad, reject in mutations(value[0], f"{path}[0]"):
                yield sub_path, [bad] + value[1:], reject
    elif isinstance(value, msgspec.Struct):
        for name in value.__struct_fields__:
            inner = getattr(value, name)
            for sub_path, bad, reject in mutations(inner, f"{path}.{name}".lstrip("."), name in JSON_FIELDS):
                yield sub_path, msgspec.structs.replace(value, **{name: bad}), reject


# Integer fields where 0 is a documented value, not a hostile one: (message tag, field path).
ZERO_ALLOWED = {("payments/1.0/set_policy", "max_txs_per_window")}  # 0: the chain's device default


def variants(message: Any) -> Iterator[Variant]:
    """Every hostile copy of a message (the message itself is not among them)."""
    tag = type(message).__struct_config__.tag
    for path, mutated, reject in mutations(message):
        if reject and (tag, path) in ZERO_ALLOWED and getattr(mutated, path, None) == 0:
            reject = False
        yield Variant(path, mutated, reject)


def sign(chain_id: str, key: PrivateKey, nonce: int, message: Any) -> bytes:
    """A signed tx; a marked string becomes invalid UTF-8 in the encoded bytes."""
    raw = build_tx(chain_id, [key], nonce, [message])
    mark = INVALID_UTF8_MARK.encode()
    return raw.replace(mark, b"\xff" * len(mark))


def is_handler_failure(result: abc.TxResult) -> bool:
    return result.codespace == ERR_HANDLER_FAILED.codespace and result.code == ERR_HANDLER_FAILED.code


class HostileWorld:
    """A city set up so every message type has a target; `baselines` builds each message afresh."""

    def __init__(self, tmp_path) -> None:
        self.city = city = City(tmp_path)
        self.chain_id = city.chain_id
        self.ledger = city.ledger
        self.office = city.id_office()
        self.office_key = self.office.keys[0]
        self.maker = city.office("maker", 0x61)
        assert city.accredit(self.maker.did, DEVICE_MANUFACTURER) == "executed"
        city.transport_office()
        self.victim_key = PrivateKey(1, bytes([0x66]) * 32)
        self.victim = self._create_org(self.victim_key)
        self.owner_a, self.owner_b, self.binder = (PrivateKey(1, bytes([s]) * 32) for s in (0x67, 0x68, 0x69))
        self.bound_did = self._register(PrivateKey(2, bytes([0x71]) * 32))
        self._bind(self.bound_did, self.owner_a)
        self.ledger.send([self.owner_a], [OfferTransfer(self.bound_did, self.owner_b.address())]).raise_for_error()
        self.unbound_did = self._register(PrivateKey(2, bytes([0x72]) * 32))
        self.open_proposal = self._open_proposal()
        self._consent_targets()
        self.published = self.office.published[RESIDENT_ID]
        self.batteries = BatteryTargets(city, self.maker)
        self.payer, self.payee = city.chain.accounts[0], city.chain.accounts[1]
        self.channel = 0
        escrow = LockEscrow(self.payee.address(), 100, self.ledger.height() + 50)
        self.ledger.send([self.payer], [escrow]).raise_for_error()
        self.mobility = MobilityTargets(city, self.payer)

    def _create_org(self, key: PrivateKey) -> str:
        keys = [VerificationKey("key-1", key.public_key, [PURPOSE_ASSERTION, PURPOSE_AUTHENTICATION])]
        self.ledger.send([key], [CreateDid(b"victim", key.signer(), keys, [])]).raise_for_error()
        return compute_did(key.signer(), b"victim")

    def _register(self, device: PrivateKey) -> str:
        message = build_registration(self.chain_id, "vehicle", "CityCar-e1", device, self.maker.did, self.maker.keys[0])
        self.ledger.send([self.maker.keys[0]], [message]).raise_for_error()
        return compute_device_did(device.public_key)

    def _bind(self, device_did: str, owner: PrivateKey) -> None:
        wallet = self.city.wallet()
        self.city.registration(wallet, device_did, owner, f"REG-{device_did}")
        proof = prove_ownership(wallet, self.ledger, self.chain_id, device_did, owner)
        self.ledger.send([owner], [BindDevice(device_did, proof)]).raise_for_error()

    def _consent_targets(self) -> None:
        """An accredited gateway and vault service, a consumer, a data set of the bound device, a consent."""
        self.gateway, self.vault = self.city.office("gateway", 0x63), self.city.office("vault", 0x64)
        assert self.city.accredit(self.gateway.did, GATEWAY_TYPE) == "executed"
        assert self.city.accredit(self.vault.did, VAULT_SERVICE_TYPE) == "executed"
        self.consumer = self.city.office("consumer", 0x65).did
        self.data_set_message = RegisterDataSet("vehicle-telemetry-1", b"\x11" * 32, self.bound_did,
                                                self.gateway.did, "")
        self.ledger.send([self.owner_a], [self.data_set_message]).raise_for_error()
        self.data_set = compute_data_set_id(self.owner_a.address(), self.bound_did, "vehicle-telemetry-1",
                                            b"\x11" * 32)
        outcome = self.ledger.send([self.owner_a], [self._grant()]).raise_for_error()
        self.consent_id = int(dict(outcome.events[0].attributes)["consent_id"])

    def _grant(self) -> GrantConsent:
        return GrantConsent(self.data_set, self.consumer, "research", 1, 10, self.ledger.height() + 100)

    def _consent_baselines(self) -> dict[str, Callable[[], tuple[PrivateKey, Any]]]:
        """Consent messages; registering the data set again is refused as a duplicate, whatever owner_did."""
        vault_key = self.vault.keys[0]

        def records_root() -> tuple[PrivateKey, Any]:
            last = get_data_set(self.ledger.store, self.data_set).last_interval
            return self.owner_a, AnchorRecordsRoot(self.data_set, last + 1, b"\x22" * 32, 5)

        def gateway_root() -> tuple[PrivateKey, Any]:
            last = get_gateway_last_interval(self.ledger.store, self.gateway.did)
            return self.gateway.keys[0], AnchorGatewayRoot(self.gateway.did, last + 1, b"\x24" * 32, 5)

        def access_log() -> tuple[PrivateKey, Any]:
            head = get_log_head(self.ledger.store, self.vault.did, self.data_set)
            previous, count = (ZERO_HEAD, 0) if head is None else (head.head, head.count)
            return vault_key, AnchorAccessLog(self.vault.did, self.data_set, b"\x33" * 32, count + 1, previous)

        return {
            "consent/1.0/register_data_set": lambda: (self.owner_a, self.data_set_message),
            "consent/1.0/grant": lambda: (self.owner_a, self._grant()),
            "consent/1.0/revoke": lambda: (self.owner_a, RevokeConsent(self.consent_id)),
            "consent/1.0/anchor_access_log": access_log,
            "consent/1.0/anchor_records_root": records_root,
            "consent/1.0/anchor_gateway_root": gateway_root,
            "consent/1.0/register_vault_key": lambda: (self.owner_a, RegisterVaultKey(address_to_str(self.owner_a.address()),
                                                                                     b"\x09" * 32)),
        }

    def ensure_offer(self) -> None:
        """Offer the bound device to owner B again if a hostile tx withdrew the offer."""
        from cityledger.modules.devices import get_device

        if get_device(self.ledger.store, self.bound_did).pending_owner != self.owner_b.address():
            message = OfferTransfer(self.bound_did, self.owner_b.address())
            self.ledger.send([self.owner_a], [message]).raise_for_error()

    def ensure_channel(self) -> int:
        """An open channel from the payer to the payee (a new one if a hostile close settled the last)."""
        record = get_channel(self.ledger.store, self.channel)
        if record is None or record.status != "open":
            message = OpenChannel(self.payee.address(), 1_000, 5, self.payer.public_key)
            self.ledger.send([self.payer], [message]).raise_for_error()
            self.channel = get_counter(self.ledger.store, NEXT_CHANNEL_ID_KEY)
        return self.channel

    def voucher(self) -> tuple[int, int, int, bytes]:
        """(channel, amount, nonce, signature) of the next valid voucher on the open channel."""
        channel = self.ensure_channel()
        record = get_channel(self.ledger.store, channel)
        amount, nonce = record.redeemed + 1, record.nonce + 1
        return channel, amount, nonce, sign_voucher(self.payer, self.chain_id, channel, amount, nonce)

    def payments_baselines(self) -> dict[str, Callable[[], tuple[PrivateKey, Any]]]:
        """Message tag -> (signing key, a well-formed payments message) in the current state."""
        payer, payee, owner = self.payer, self.payee, self.owner_a
        return {
            "payments/1.0/set_policy": lambda: (owner, SetPolicy(
                self.bound_did, 1_000, 500, ["charger"], [payee.address()], self.ledger.height() + 100)),
            "payments/1.0/freeze": lambda: (owner, FreezeDevice(self.bound_did)),
            "payments/1.0/declare_counterparty": lambda: (owner, DeclareCounterparty("charger", self.bound_did)),
            "payments/1.0/escrow_lock": lambda: (payer, LockEscrow(payee.address(), 5, self.ledger.height() + 10)),
            "payments/1.0/escrow_release": lambda: (payer, ReleaseEscrow(1)),
            "payments/1.0/escrow_refund": lambda: (payer, RefundEscrow(1)),
            "payments/1.0/channel_open": lambda: (payer, OpenChannel(payee.address(), 5, 5, payer.public_key)),
            "payments/1.0/channel_top_up": lambda: (payer, TopUpChannel(self.ensure_channel(), 5)),
            "payments/1.0/channel_redeem": lambda: (payee, RedeemVoucher(*self.voucher())),
            "payments/1.0/channel_close": lambda: (payee, CloseChannel(*self.voucher())),
            "payments/1.0/channel_start_close": lambda: (payer, StartClose(self.ensure_channel())),
            "payments/1.0/channel_finalize": lambda: (payer, FinalizeChannel(self.ensure_channel())),
        }

    def _open_proposal(self) -> int:
        raw = self.ledger.store.get(NEXT_PROPOSAL_ID_KEY)
        proposal_id = int.from_bytes(raw, "big")
        action = encode(ParamChange("governance.voting_period_blocks", 500))
        self.ledger.send([self.city.members[0]], [SubmitProposal(action)]).raise_for_error()
        return proposal_id

    def presentation(self, timestamp: Any = None) -> bytes:
        """A presentation-shaped JSON naming this ledger's real anchored objects (no valid proof)."""
        published = self.city.transport_office().published["vehicle-registration"]
        status = get_status_list(self.ledger.store, published.rev_reg_id)
        ident = {"schema_id": published.schema_id, "cred_def_id": published.cred_def_id,
                 "rev_reg_id": published.rev_reg_id, "timestamp": status.timestamp if timestamp is None else timestamp}
        return json.dumps({"identifiers": [ident], "proof": {}, "requested_proof": {}}).encode()

    def baselines(self) -> dict[str, Callable[[], tuple[PrivateKey, Any]]]:
        """Message tag -> a function giving (signing key, a well-formed message) in the current state."""
        store, office, members = self.ledger.store, self.office, self.city.members
        creator = PrivateKey(1, bytes([0x6a]) * 32)
        vk = [VerificationKey("key-1", creator.public_key, [PURPOSE_ASSERTION, PURPOSE_AUTHENTICATION])]
        services = [Service("tails", "AnonCredsTailsServer", "https://office.city.example/tails")]
        status = get_status_list(store, self.published.rev_reg_id)
        return {
            "bank/1.0/transfer": lambda: (self.city.chain.accounts[0], Transfer(members[1].address(), 5)),
            "bank/1.0/multi_send": lambda: (self.city.chain.accounts[0], MultiSend([Output(members[1].address(), 5)])),
            "governance/1.0/submit_proposal": lambda: (members[0], SubmitProposal(
                encode(ParamChange("governance.voting_period_blocks", 600)))),
            "governance/1.0/vote": lambda: (members[1], Vote(self.open_proposal, True)),
            "identity/1.0/create_did": lambda: (creator, CreateDid(b"salt", creator.signer(), vk, services)),
            "identity/1.0/update_did": lambda: (self.victim_key, UpdateDid(
                self.victim, get_did(store, self.victim).version, self.victim_key.signer(), vk, services)),
            "identity/1.0/deactivate_did": lambda: (self.victim_key, DeactivateDid(self.victim)),
            "identity/1.0/anchor_schema": lambda: (self.office_key, AnchorSchema(office.did, "s1", "1.0", ["a", "b"])),
            "identity/1.0/anchor_cred_def": lambda: (self.office_key, AnchorCredDef(
                office.did, self.published.schema_id, "t2", b'{"primary":{}}')),
            "identity/1.0/anchor_rev_reg_def": lambda: (self.office_key, AnchorRevRegDef(
                office.did, self.published.cred_def_id, "t2", 100, b'{"accumKey":{"z":"1"}}',
                "9" * 44, "https://office.city.example/tails/x")),
            "identity/1.0/update_status_list": lambda: (self.office_key, UpdateStatusList(
                self.published.rev_reg_id, bytes(len(status.revoked)), status.accumulator)),
            "devices/1.0/register": lambda: (self.maker.keys[0], build_registration(
                self.chain_id, "vehicle", "CityCar-e1", PrivateKey(2, bytes([0x73]) * 32), self.maker.did,
                self.maker.keys[0])),
            "devices/1.0/bind": lambda: (self.binder, BindDevice(self.unbound_did, self.presentation())),
            "devices/1.0/accept_transfer": lambda: (self.owner_b, AcceptTransfer(self.bound_did, self.presentation())),
            "devices/1.0/offer_transfer": lambda: (self.owner_a, OfferTransfer(self.bound_did, self.binder.address())),
            "devices/1.0/decommission": lambda: (self.owner_a, Decommission(self.bound_did)),
        } | self._consent_baselines() | self.batteries.baselines() | self.payments_baselines() | \
            self.mobility.baselines()

    def owner_account(self) -> str:
        return address_to_str(self.owner_a.address())


def strategy_for(info: Any, strings: list[str]) -> Any:
    """A hypothesis strategy for any value of a msgspec type (from msgspec.inspect.type_info),
    mixing random values with this ledger's real identifiers and hostile variants of them."""
    from hypothesis import strategies as st

    near = st.sampled_from(strings).flatmap(lambda s: st.sampled_from([s, s + "\n", " " + s, s[:-1], s + "x"]))
    inspect = msgspec.inspect
    if isinstance(info, inspect.BoolType):
        return st.booleans()
    if isinstance(info, inspect.IntType):
        return st.one_of(st.integers(-(2**63), 2**64 - 1), st.integers(-2, 300))
    if isinstance(info, inspect.StrType):
        return st.one_of(st.text(max_size=80), near)
    if isinstance(info, inspect.BytesType):
        return st.one_of(st.binary(max_size=120), st.sampled_from([DEEP_JSON, NESTED_OBJECTS, HUGE_FLOAT_JSON]))
    if isinstance(info, inspect.ListType):
        return st.lists(strategy_for(info.item_type, strings), max_size=3)
    if isinstance(info, inspect.StructType):
        fields = [strategy_for(field.type, strings) for field in info.fields]
        return st.tuples(*fields).map(lambda values: info.cls(*values))
    raise TypeError(f"no strategy for {info}")
