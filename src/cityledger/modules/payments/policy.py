"""Device spending policies: what a device's own account may pay, set by the device's owner.

A device account is the 1-of-1 account of a registered device's key; its DID is derived from the
same signer, so a payment's sender tells the ledger whether a device is paying. Such a payment
passes only under a policy set by the device's current owner (ownership epoch included: a sold car
keeps no policy of its former owner), unfrozen, unexpired, to an allowed counterparty, within the
day's caps. Days are block time: day = ctx.time_ns // DAY_NS, never the wall clock.
"""

from __future__ import annotations

import msgspec

from ...core.encoding import decoder, encode
from ...core.state import StateReader
from ...core.types import ADDRESS_LEN, Address
from ..bank.messages import MAX_AMOUNT
from ..base import Context
from ..devices.messages import STATUS_ACTIVE, DeviceRecord
from .errors import (
    ERR_COUNTERPARTY,
    ERR_COUNTERPARTY_CAP,
    ERR_DAILY_CAP,
    ERR_FROZEN,
    ERR_INVALID,
    ERR_NO_POLICY,
    ERR_NOT_OWNER,
    ERR_POLICY_EXPIRED,
    ERR_UNKNOWN_DEVICE,
)
from .expected import Devices
from .keys import counterparty_key, policy_key, spend_counterparty_key, spend_day_key
from .messages import (
    COUNTERPARTY_DEVICE_KINDS,
    COUNTERPARTY_KINDS,
    DAY_NS,
    MAX_POLICY_ADDRESSES,
    MAX_POLICY_BLOCKS,
    MAX_QUOTA_TXS,
    CounterpartyRecord,
    DeclareCounterparty,
    FreezeDevice,
    PolicyRecord,
    SetPolicy,
    SpendRecord,
)

_POLICY = decoder(PolicyRecord)
_SPEND = decoder(SpendRecord)
_COUNTERPARTY_RECORD = decoder(CounterpartyRecord)


# -- reads ---------------------------------------------------------------------------------------

def get_policy(state: StateReader, device: str) -> PolicyRecord | None:
    """A device's stored policy, or None."""
    raw = state.get(policy_key(device))
    return None if raw is None else _POLICY.decode_lenient(raw)


def get_counterparty(state: StateReader, address: bytes) -> CounterpartyRecord | None:
    """A declared counterparty, or None."""
    raw = state.get(counterparty_key(address))
    return None if raw is None else _COUNTERPARTY_RECORD.decode_lenient(raw)


def get_spent(state: StateReader, key: bytes, day: int) -> int:
    """What was spent under `key` on `day` (0 if the record is of an earlier day)."""
    raw = state.get(key)
    if raw is None:
        return 0
    record = _SPEND.decode_lenient(raw)
    return record.total if record.day == day else 0


def compute_day(time_ns: int) -> int:
    """The block-time day a block belongs to."""
    return time_ns // DAY_NS


def sender_device(devices: Devices, ctx: Context) -> DeviceRecord | None:
    """The registered device whose own account sends this tx, or None for any other account."""
    return devices.get_account_device(ctx.state, ctx.sender, ctx.signer)


def counterparty_kind(devices: Devices, state: StateReader, address: bytes) -> str | None:
    """The kind a counterparty declared, while the device vouching for it is active and still its own."""
    record = get_counterparty(state, address)
    if record is None:
        return None
    device = devices.get_device(state, record.device)
    if device is None or device.status != STATUS_ACTIVE or device.owner != address:
        return None
    return record.kind


# -- the check every payment from a device account passes ----------------------------------------

def _current_policy(devices: Devices, ctx: Context, device: DeviceRecord) -> PolicyRecord:
    policy = get_policy(ctx.state, device.did)
    if device.status != STATUS_ACTIVE:
        raise ERR_NO_POLICY(f"sender: device {device.did} is {device.status}", "sender")
    if policy is None or policy.owner != device.owner or policy.epoch != device.epoch:
        raise ERR_NO_POLICY(f"sender: device {device.did} has no spending policy from its current owner", "sender")
    if policy.frozen:
        raise ERR_FROZEN(f"sender: device {device.did} is frozen by its owner", "sender")
    if ctx.height > policy.expiry_height:
        raise ERR_POLICY_EXPIRED(f"sender: the policy of {device.did} expired at height {policy.expiry_height}",
                                 "sender")
    return policy


def check_device_spend(devices: Devices, ctx: Context, payee: bytes, amount: int) -> None:
    """If the sender is a device account, refuse a payment its policy does not allow, else count it."""
    device = sender_device(devices, ctx)
    if device is not None:
        check_policy_spend(devices, ctx, device, payee, amount)


def check_policy_spend(devices: Devices, ctx: Context, device: DeviceRecord, payee: bytes, amount: int) -> None:
    """Refuse a payment of `device`'s own account that its policy does not allow, else count it."""
    policy = _current_policy(devices, ctx, device)
    # Check: the payee is an allowed address or a declared counterparty of an allowed kind.
    if payee not in policy.addresses and counterparty_kind(devices, ctx.state, payee) not in policy.kinds:
        raise ERR_COUNTERPARTY(f"payee: not a counterparty the policy of {device.did} allows", "payee")
    # Check: the day's caps, all counterparties together and this one alone.
    day = compute_day(ctx.time_ns)
    day_key, pair_key = spend_day_key(device.did), spend_counterparty_key(device.did, payee)
    spent, spent_pair = get_spent(ctx.state, day_key, day), get_spent(ctx.state, pair_key, day)
    if spent + amount > policy.daily_cap:
        raise ERR_DAILY_CAP(f"amount: {amount} would bring day {day}'s spending to {spent + amount}, over the "
                            f"daily cap of {policy.daily_cap}", "amount")
    if spent_pair + amount > policy.counterparty_cap:
        raise ERR_COUNTERPARTY_CAP(f"amount: {amount} would bring day {day}'s spending with this payee to "
                                   f"{spent_pair + amount}, over the cap of {policy.counterparty_cap}", "amount")
    ctx.state.set(day_key, encode(SpendRecord(day, spent + amount)))
    ctx.state.set(pair_key, encode(SpendRecord(day, spent_pair + amount)))


# -- handlers ------------------------------------------------------------------------------------

def _owned_device(devices: Devices, ctx: Context, did: str) -> DeviceRecord:
    device = devices.get_device(ctx.state, did)
    if device is None:
        raise ERR_UNKNOWN_DEVICE(f"device: {did!r} is not a registered device", "device")
    if device.status != STATUS_ACTIVE:
        raise ERR_UNKNOWN_DEVICE(f"device: {did} is {device.status}", "device")
    if not device.owner or device.owner != ctx.sender:
        raise ERR_NOT_OWNER(f"sender: does not own {did}", "device")
    return device


def _check_policy_fields(ctx: Context, msg: SetPolicy) -> None:
    for field, value in (("daily_cap", msg.daily_cap), ("counterparty_cap", msg.counterparty_cap)):
        if not 0 < value <= MAX_AMOUNT:
            raise ERR_INVALID(f"{field}: expected 1 to {MAX_AMOUNT} micro-credits, got {value}", field)
    if any(kind not in COUNTERPARTY_KINDS for kind in msg.kinds) or list(msg.kinds) != sorted(set(msg.kinds)):
        raise ERR_INVALID(f"kinds: expected distinct sorted values of {list(COUNTERPARTY_KINDS)}", "kinds")
    if len(msg.addresses) > MAX_POLICY_ADDRESSES:
        raise ERR_INVALID(f"addresses: expected at most {MAX_POLICY_ADDRESSES}, got {len(msg.addresses)}", "addresses")
    if any(len(a) != ADDRESS_LEN for a in msg.addresses) or list(msg.addresses) != sorted(set(msg.addresses)):
        raise ERR_INVALID(f"addresses: expected distinct sorted {ADDRESS_LEN}-byte addresses", "addresses")
    if not 0 <= msg.max_txs_per_window <= MAX_QUOTA_TXS:
        raise ERR_INVALID(f"max_txs_per_window: expected 0 (the chain's device default) to {MAX_QUOTA_TXS}, "
                          f"got {msg.max_txs_per_window}", "max_txs_per_window")
    if not ctx.height <= msg.expiry_height <= ctx.height + MAX_POLICY_BLOCKS:
        raise ERR_INVALID(f"expiry_height: expected {ctx.height} to {ctx.height + MAX_POLICY_BLOCKS}, "
                          f"got {msg.expiry_height}", "expiry_height")


def process_set_policy(devices: Devices, ctx: Context, msg: SetPolicy) -> None:
    """The owner sets the device's policy (replacing any, and unfreezing it)."""
    # Check: the fields are well formed; the sender owns the active device.
    _check_policy_fields(ctx, msg)
    device = _owned_device(devices, ctx, msg.device)
    record = PolicyRecord(device.did, Address(bytes(ctx.sender)), device.epoch, msg.daily_cap, msg.counterparty_cap,
                          list(msg.kinds), [Address(bytes(a)) for a in msg.addresses], msg.expiry_height, False,
                          ctx.height, msg.max_txs_per_window)
    ctx.state.set(policy_key(device.did), encode(record))
    ctx.emit("payments_policy_set", device=device.did, daily_cap=msg.daily_cap,
             counterparty_cap=msg.counterparty_cap, expiry_height=msg.expiry_height,
             max_txs_per_window=msg.max_txs_per_window)


def process_freeze(devices: Devices, ctx: Context, msg: FreezeDevice) -> None:
    """The owner freezes the device: no payment from it passes until a new policy is set."""
    # Check: the sender owns the active device.
    device = _owned_device(devices, ctx, msg.device)
    policy = get_policy(ctx.state, device.did)
    if policy is None or policy.owner != device.owner or policy.epoch != device.epoch:
        # No policy of this owner: a frozen one allowing nothing, so the freeze holds on its own.
        policy = PolicyRecord(device.did, device.owner, device.epoch, 0, 0, [], [], ctx.height, True, ctx.height)
    ctx.state.set(policy_key(device.did), encode(msgspec.structs.replace(policy, frozen=True,
                                                                         updated_height=ctx.height)))
    ctx.emit("payments_device_frozen", device=device.did)


def process_declare_counterparty(devices: Devices, ctx: Context, msg: DeclareCounterparty) -> None:
    """The sender declares itself a counterparty of a kind, vouched for by an active device it owns."""
    # Check: a known kind, and an owned active device of the kind that vouches for it.
    if msg.kind not in COUNTERPARTY_KINDS:
        raise ERR_INVALID(f"kind: expected one of {list(COUNTERPARTY_KINDS)}, got {msg.kind!r}", "kind")
    device = _owned_device(devices, ctx, msg.device)
    if device.kind != COUNTERPARTY_DEVICE_KINDS[msg.kind]:
        raise ERR_INVALID(f"device: a {msg.kind} counterparty needs a device of kind "
                          f"{COUNTERPARTY_DEVICE_KINDS[msg.kind]!r}, not {device.kind!r}", "device")
    record = CounterpartyRecord(Address(bytes(ctx.sender)), msg.kind, device.did, ctx.height)
    ctx.state.set(counterparty_key(ctx.sender), encode(record))
    ctx.emit("payments_counterparty_declared", counterparty=ctx.sender, counterparty_kind=msg.kind, device=device.did)
