"""Session accounting: meter readings that only go forward, vouchers that keep up, signed receipts.

Everything here is pure bookkeeping the CSMS drives from OCPP events; it never touches the ledger.
A vehicle's channel is long-lived, so a session's cost is owed on top of what the channel's newest
voucher already covered when the session started (`base_micro`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation

from ...core.encoding import encode
from ...core.keys import PrivateKey, PublicKey, verify_signature
from ...modules.payments.vouchers import compute_voucher_bytes, verify_voucher
from .tariff import Tariff, compute_cost_micro

DOMAIN_RECEIPT = b"cityledger/charging-receipt/1\x00"
DOMAIN_IDTOKEN = b"cityledger/charging-idtoken/1\x00"
IDTOKEN_CHARS = 20  # hex chars (80 bits) of a vehicle's idToken: OCPP 1.6 idTag allows 20, 2.0.1 idToken 36
MAX_METER_WH = 10**12  # a register reading above a terawatt-hour is a broken meter
ENERGY_MEASURAND = "Energy.Active.Import.Register"
UNIT_SCALE = {"Wh": Decimal(1), "kWh": Decimal(1000)}
# RFC 3339 only: datetime.fromisoformat alone also takes a newline before the zone, or a space.
_TIME_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)", re.ASCII)


class AccountingError(ValueError):
    """An event or voucher refused without changing anything: why, naming the field."""


@dataclass(frozen=True)
class ChannelTerms:
    """The payment channel a vehicle pays an operator through, as the chain last showed it."""

    chain_id: str
    channel_id: int
    voucher_key: PublicKey
    deposit: int
    redeemed: int = 0
    nonce: int = 0


@dataclass(frozen=True)
class Voucher:
    """A payer's cumulative promise on a channel (modules/payments/vouchers.py defines the bytes)."""

    channel_id: int
    amount: int
    nonce: int
    signature: bytes

    def digest(self, chain_id: str) -> bytes:
        """The voucher's hash as a receipt names it: sha256 over the signed bytes and the signature."""
        signed = compute_voucher_bytes(chain_id, self.channel_id, self.amount, self.nonce)
        return hashlib.sha256(signed + self.signature).digest()


def compute_id_token(operator_key: PublicKey, terms: ChannelTerms) -> str:
    """The vehicle's pseudonym towards one operator: no DID or owner identity passes through OCPP."""
    material = DOMAIN_IDTOKEN + encode([operator_key.scheme, operator_key.key, terms.chain_id, terms.channel_id])
    return hashlib.sha256(material).hexdigest()[:IDTOKEN_CHARS]


class VoucherBook:
    """The payee's side of one channel: keeps the newest voucher the chain would redeem."""

    def __init__(self, terms: ChannelTerms) -> None:
        self.terms = terms
        self.newest: Voucher | None = None

    @property
    def covered_micro(self) -> int:
        """What the channel owes the payee in total so far."""
        return self.newest.amount if self.newest else self.terms.redeemed

    def accept(self, voucher: Voucher, owed_micro: int) -> None:
        """Keep `voucher` if the chain would redeem it and it asks no more than `owed_micro` in total."""
        terms, nonce = self.terms, self.newest.nonce if self.newest else self.terms.nonce
        if voucher.channel_id != terms.channel_id:
            raise AccountingError(f"channel_id: expected {terms.channel_id}, got {voucher.channel_id}")
        if voucher.nonce <= nonce:
            raise AccountingError(f"nonce: expected above {nonce}, got {voucher.nonce}")
        if not self.covered_micro <= voucher.amount <= min(terms.deposit, owed_micro):
            raise AccountingError(f"amount: expected {self.covered_micro} to {min(terms.deposit, owed_micro)} "
                                  f"(owed, within the deposit {terms.deposit}), got {voucher.amount}")
        if not verify_voucher(terms.voucher_key, terms.chain_id, terms.channel_id, voucher.amount, voucher.nonce,
                              voucher.signature):
            raise AccountingError("signature: not the channel's voucher key over this voucher")
        self.newest = voucher


def parse_time(timestamp: str, field_name: str) -> datetime:
    """An OCPP timestamp (RFC 3339 with a zone) as an aware datetime."""
    try:
        if not _TIME_RE.fullmatch(timestamp):
            raise ValueError(timestamp)
        moment = datetime.fromisoformat(timestamp)
    except (TypeError, ValueError):
        raise AccountingError(f"{field_name}: expected an RFC 3339 time, got {timestamp!r}") from None
    if moment.tzinfo is None:
        raise AccountingError(f"{field_name}: expected a time zone (Z or +hh:mm), got {timestamp!r}")
    return moment


def compute_energy_wh(sampled_values: list[dict], default_unit: str = "Wh") -> int | None:
    """The energy register among sampled values, in whole Wh (floored), or None if none is there."""
    for sample in sampled_values:
        if sample.get("measurand", ENERGY_MEASURAND) != ENERGY_MEASURAND:
            continue
        unit_info = sample.get("unit_of_measure") or {}
        unit = unit_info.get("unit", sample.get("unit", default_unit))
        multiplier = int(unit_info.get("multiplier", 0))
        if unit not in UNIT_SCALE:
            raise AccountingError(f"unit: expected Wh or kWh for {ENERGY_MEASURAND}, got {unit!r}")
        try:
            wh = int(Decimal(str(sample["value"])) * UNIT_SCALE[unit] * Decimal(10) ** multiplier)
        except (InvalidOperation, KeyError, ValueError):
            raise AccountingError(f"value: expected a number, got {sample.get('value')!r}") from None
        if not 0 <= wh <= MAX_METER_WH:
            raise AccountingError(f"value: expected 0 to {MAX_METER_WH} Wh, got {wh}")
        return wh
    return None


@dataclass
class Session:
    """One charging transaction: its meter window, what it costs, and what its vehicle paid."""

    session_id: str
    charger_id: str
    tariff: Tariff
    started_at: datetime
    meter_start_wh: int | None
    id_token: str | None = None
    base_micro: int = 0
    meter_wh: int = field(init=False)
    last_at: datetime = field(init=False)
    ended: bool = False
    stop_requested: bool = False
    seq_no: int = -1  # the highest OCPP 2.0.1 seqNo applied (replays at or below it change nothing)
    touched_s: float = 0.0  # the CSMS's clock at the last event, for the idle timeout (not billing)
    start_key: str = ""  # 1.6: the StartTransaction that opened it, to recognise one sent again

    def __post_init__(self) -> None:
        self.meter_wh, self.last_at = self.meter_start_wh or 0, self.started_at

    def record_meter(self, wh: int, at: datetime) -> None:
        """Move the session forward to a reading; one that goes backwards in energy or time changes nothing."""
        if self.meter_start_wh is None:
            # A Started event without a reading: the first reading is where the session's energy starts.
            self.meter_start_wh = self.meter_wh = wh
        if wh < self.meter_wh:
            raise AccountingError(f"meter_value: energy went backwards from {self.meter_wh} Wh to {wh} Wh")
        if at < self.last_at:
            raise AccountingError(f"timestamp: went backwards from {self.last_at.isoformat()} to {at.isoformat()}")
        self.meter_wh, self.last_at = wh, at

    @property
    def energy_wh(self) -> int:
        """Energy delivered so far."""
        return 0 if self.meter_start_wh is None else self.meter_wh - self.meter_start_wh

    @property
    def duration_s(self) -> int:
        """Whole seconds between the start and the newest reading."""
        return int((self.last_at - self.started_at).total_seconds())

    @property
    def cost_micro(self) -> int:
        """The running cost, and at the end the bill: the one pricing function."""
        return compute_cost_micro(self.tariff, self.energy_wh, self.duration_s)


@dataclass(frozen=True)
class Receipt:
    """What the operator signs for the vehicle when a session is paid."""

    chain_id: str
    channel_id: int
    session_id: str
    energy_wh: int
    cost_micro: int
    voucher_hash: bytes
    operator_key: PublicKey
    signature: bytes = b""

    def signed_bytes(self) -> bytes:
        """The bytes the operator signs."""
        return DOMAIN_RECEIPT + encode([self.chain_id, self.channel_id, self.session_id, self.energy_wh,
                                        self.cost_micro, self.voucher_hash])

    def verify(self) -> bool:
        """True if the operator key signed exactly this receipt."""
        return verify_signature(self.operator_key, self.signed_bytes(), self.signature)

    def to_json(self) -> dict:
        """The receipt as the vehicle endpoint sends it."""
        return {"chain_id": self.chain_id, "channel_id": self.channel_id, "session_id": self.session_id,
                "energy_wh": self.energy_wh, "cost_micro": self.cost_micro, "voucher_hash": self.voucher_hash.hex(),
                "operator_key": {"scheme": self.operator_key.scheme, "key": self.operator_key.key.hex()},
                "signature": self.signature.hex()}

    @classmethod
    def from_json(cls, data: dict) -> "Receipt":
        """Read a receipt sent by the vehicle endpoint."""
        key = PublicKey(int(data["operator_key"]["scheme"]), bytes.fromhex(data["operator_key"]["key"]))
        return cls(data["chain_id"], int(data["channel_id"]), data["session_id"], int(data["energy_wh"]),
                   int(data["cost_micro"]), bytes.fromhex(data["voucher_hash"]), key, bytes.fromhex(data["signature"]))


def sign_receipt(key: PrivateKey, receipt: Receipt) -> Receipt:
    """The receipt with the operator's signature."""
    unsigned = Receipt(**{**receipt.__dict__, "operator_key": key.public_key, "signature": b""})
    return Receipt(**{**unsigned.__dict__, "signature": key.sign(unsigned.signed_bytes())})
