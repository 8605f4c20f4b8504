"""Payments for programs: builders of payments transactions, and vouchers for payer and payee.

    tx = open_channel(chain_id, vehicle_key, nonce, operator, deposit=5_000_000, settle_delay=100)
    voucher = Voucher.sign(vehicle_key, chain_id, channel_id, amount=1_200_000, nonce=7)   # payer
    tracker = VoucherTracker(chain_id, channel_id, vehicle_key.public_key, deposit=5_000_000)  # payee
    tracker.accept(voucher)          # raises VoucherError unless newer, covered and signed
    tx = redeem_voucher(chain_id, operator_key, nonce, tracker.newest)

The chain checks a voucher with the same function (modules/payments/vouchers.py), so a voucher the
payee's tracker accepted redeems on chain unless the channel was settled or a newer one redeemed.
Channel, escrow and policy state: Client.query("payments", "channel", id=…), "escrow", "policy".
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.keys import PrivateKey, PublicKey, Signer
from ..modules.payments import (
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
    sign_voucher,
    verify_voucher,
)
from .txs import KeyOrKeys, sign, to_address


class VoucherError(ValueError):
    """A voucher the payee must not accept: why, naming the field."""


@dataclass(frozen=True)
class Voucher:
    """A payer's signed promise: channel `channel_id` owes its payee `amount` in total."""

    chain_id: str
    channel_id: int
    amount: int
    nonce: int
    signature: bytes

    @classmethod
    def sign(cls, key: PrivateKey, chain_id: str, channel_id: int, amount: int, nonce: int) -> "Voucher":
        """The payer signs a voucher with the channel's voucher key."""
        return cls(chain_id, channel_id, amount, nonce, sign_voucher(key, chain_id, channel_id, amount, nonce))

    def verify(self, key: PublicKey) -> bool:
        """True if `key` signed exactly this voucher."""
        return verify_voucher(key, self.chain_id, self.channel_id, self.amount, self.nonce, self.signature)


class VoucherTracker:
    """The payee's side of one channel: accepts only vouchers the chain would redeem, keeps the newest."""

    def __init__(self, chain_id: str, channel_id: int, voucher_key: PublicKey, deposit: int,
                 redeemed: int = 0, nonce: int = 0) -> None:
        self.chain_id, self.channel_id, self.voucher_key = chain_id, channel_id, voucher_key
        self.deposit, self.redeemed = deposit, redeemed
        self.newest: Voucher | None = None
        self._nonce = nonce

    def accept(self, voucher: Voucher) -> int:
        """Check a voucher against the channel; keep it; return what it adds over the newest so far."""
        floor = self.newest.amount if self.newest else self.redeemed
        if voucher.chain_id != self.chain_id or voucher.channel_id != self.channel_id:
            raise VoucherError(f"channel_id: voucher is for {voucher.chain_id}/{voucher.channel_id}, "
                               f"not {self.chain_id}/{self.channel_id}")
        if voucher.nonce <= self._nonce:
            raise VoucherError(f"nonce: expected above {self._nonce}, got {voucher.nonce}")
        if not floor <= voucher.amount <= self.deposit:
            raise VoucherError(f"amount: expected {floor} to {self.deposit} (the deposit), got {voucher.amount}")
        if not voucher.verify(self.voucher_key):
            raise VoucherError("signature: not made by the channel's voucher key over this voucher")
        self.newest, self._nonce = voucher, voucher.nonce
        return voucher.amount - floor


def set_policy(chain_id: str, keys: KeyOrKeys, nonce: int, device: str, *, daily_cap: int, counterparty_cap: int,
               expiry_height: int, kinds: tuple[str, ...] = (), addresses: tuple[str | bytes, ...] = (),
               max_txs_per_window: int = 0, signer: Signer | None = None) -> bytes:
    """The owner sets what the device's own account may spend (replacing and unfreezing any policy),
    and how many txs it may send per quota window (0: the chain's device default)."""
    allowed = sorted({to_address(a, f"addresses[{i}]") for i, a in enumerate(addresses)})
    message = SetPolicy(device, daily_cap, counterparty_cap, sorted(set(kinds)), allowed, expiry_height,
                        max_txs_per_window)
    return sign(chain_id, keys, nonce, [message], signer=signer)


def freeze_device(chain_id: str, keys: KeyOrKeys, nonce: int, device: str, *, signer: Signer | None = None) -> bytes:
    """The owner stops every payment from the device at once."""
    return sign(chain_id, keys, nonce, [FreezeDevice(device)], signer=signer)


def declare_counterparty(chain_id: str, keys: KeyOrKeys, nonce: int, kind: str, device: str) -> bytes:
    """Declare the sender a counterparty of `kind` (charger, parking, toll), vouched for by its device."""
    return sign(chain_id, keys, nonce, [DeclareCounterparty(kind, device)])


def lock_escrow(chain_id: str, keys: KeyOrKeys, nonce: int, payee: str | bytes, amount: int, timeout_height: int,
                *, signer: Signer | None = None) -> bytes:
    """Lock `amount` for `payee`, refundable from `timeout_height` on."""
    return sign(chain_id, keys, nonce, [LockEscrow(to_address(payee, "payee"), amount, timeout_height)],
                signer=signer)


def release_escrow(chain_id: str, keys: KeyOrKeys, nonce: int, escrow_id: int) -> bytes:
    """The payer pays a locked escrow to its payee."""
    return sign(chain_id, keys, nonce, [ReleaseEscrow(escrow_id)])


def refund_escrow(chain_id: str, keys: KeyOrKeys, nonce: int, escrow_id: int) -> bytes:
    """The payer takes an escrow back after its timeout."""
    return sign(chain_id, keys, nonce, [RefundEscrow(escrow_id)])


def open_channel(chain_id: str, key: PrivateKey, nonce: int, payee: str | bytes, deposit: int,
                 settle_delay: int) -> bytes:
    """Open a channel whose vouchers `key` signs (the payer's own single key)."""
    message = OpenChannel(to_address(payee, "payee"), deposit, settle_delay, key.public_key)
    return sign(chain_id, key, nonce, [message])


def top_up_channel(chain_id: str, keys: KeyOrKeys, nonce: int, channel_id: int, amount: int) -> bytes:
    """The payer adds to an open channel's deposit."""
    return sign(chain_id, keys, nonce, [TopUpChannel(channel_id, amount)])


def redeem_voucher(chain_id: str, keys: KeyOrKeys, nonce: int, voucher: Voucher) -> bytes:
    """The payee redeems its newest voucher; the channel stays open."""
    message = RedeemVoucher(voucher.channel_id, voucher.amount, voucher.nonce, voucher.signature)
    return sign(chain_id, keys, nonce, [message])


def close_channel(chain_id: str, keys: KeyOrKeys, nonce: int, channel_id: int, voucher: Voucher | None = None) -> bytes:
    """The payee settles at once, with its newest voucher if it has one not yet redeemed."""
    if voucher is not None and voucher.channel_id != channel_id:
        raise ValueError(f"voucher: is for channel {voucher.channel_id}, not {channel_id}")
    message = (CloseChannel(channel_id, voucher.amount, voucher.nonce, voucher.signature) if voucher
               else CloseChannel(channel_id, 0, 0, b""))
    return sign(chain_id, keys, nonce, [message])


def start_close(chain_id: str, keys: KeyOrKeys, nonce: int, channel_id: int) -> bytes:
    """The payer starts the challenge window."""
    return sign(chain_id, keys, nonce, [StartClose(channel_id)])


def finalize_channel(chain_id: str, keys: KeyOrKeys, nonce: int, channel_id: int) -> bytes:
    """Either party settles after the challenge window."""
    return sign(chain_id, keys, nonce, [FinalizeChannel(channel_id)])
