"""Payments queries: /payments/channel, /payments/escrow, /payments/policy, /payments/counterparty,
/payments/locked."""

from __future__ import annotations

from typing import Any

from ...core.state import StateReader
from ...core.types import address_from_str, address_to_str
from ..devices.messages import STATUS_ACTIVE
from ..identity.did import is_did
from .expected import Devices
from .handlers import MAX_ID, compute_channel_balance, get_channel, get_escrow, get_locked
from .keys import PAYMENTS_ACCOUNT, spend_day_key
from .messages import ChannelRecord, EscrowRecord
from .policy import compute_day, get_counterparty, get_policy, get_spent


def _id(args: dict[str, str], name: str) -> int:
    text = args.get(name, "")
    if not (isinstance(text, str) and text.isascii() and text.isdigit() and len(text) <= 19):
        raise ValueError(f"{name}: expected a decimal id 1 to {MAX_ID}, got {str(text)[:32]!r}")
    return int(text)


def query_channel(state: StateReader, args: dict[str, str]) -> dict[str, Any]:
    """A channel by {'id'}: parties, voucher key, deposit, redeemed, newest nonce, status."""
    channel_id = _id(args, "id")
    record = get_channel(state, channel_id)
    if record is None:
        raise LookupError(f"id: no channel {channel_id}")
    return render_channel(record)


def render_channel(record: ChannelRecord) -> dict[str, Any]:
    """A channel as queries answer it."""
    return {"channel_id": record.channel_id, "payer": address_to_str(record.payer),
            "payee": address_to_str(record.payee), "voucher_key": {"scheme": record.voucher_key.scheme,
                                                                  "key": record.voucher_key.key.hex()},
            "deposit": record.deposit, "redeemed": record.redeemed, "balance": compute_channel_balance(record),
            "nonce": record.nonce, "settle_delay": record.settle_delay, "closing_height": record.closing_height,
            "status": record.status, "opened_height": record.opened_height}


def query_escrow(state: StateReader, args: dict[str, str]) -> dict[str, Any]:
    """An escrow by {'id'} (released and refunded escrows are gone)."""
    escrow_id = _id(args, "id")
    record = get_escrow(state, escrow_id)
    if record is None:
        raise LookupError(f"id: no escrow {escrow_id}")
    return render_escrow(record)


def render_escrow(record: EscrowRecord) -> dict[str, Any]:
    """An escrow as queries answer it."""
    return {"escrow_id": record.escrow_id, "payer": address_to_str(record.payer), "payee": address_to_str(record.payee),
            "amount": record.amount, "timeout_height": record.timeout_height, "created_height": record.created_height}


def query_policy(devices: Devices, state: StateReader, args: dict[str, str]) -> dict[str, Any]:
    """A device's policy by {'device'}, whether it binds the current owner, and what it spent on
    its latest day (the day is block time: day = time_ns // DAY_NS)."""
    did = args.get("device", "")
    record = get_policy(state, did) if is_did(did) else None
    if record is None:
        raise LookupError(f"device: no spending policy for {str(did)[:80]!r}")
    device = devices.get_device(state, did)
    current = (device is not None and device.status == STATUS_ACTIVE and device.owner == record.owner
               and device.epoch == record.epoch)
    raw_day = args.get("time_ns", "")
    known = isinstance(raw_day, str) and raw_day.isascii() and raw_day.isdigit() and len(raw_day) <= 20
    spent = get_spent(state, spend_day_key(did), compute_day(int(raw_day))) if known else None
    return {"device": record.device, "owner": address_to_str(record.owner), "current": current,
            "daily_cap": record.daily_cap, "counterparty_cap": record.counterparty_cap, "kinds": list(record.kinds),
            "addresses": [address_to_str(a) for a in record.addresses], "expiry_height": record.expiry_height,
            "frozen": record.frozen, "updated_height": record.updated_height, "spent_today": spent,
            "max_txs_per_window": record.max_txs_per_window}


def query_counterparty(state: StateReader, args: dict[str, str]) -> dict[str, Any]:
    """A declared counterparty by {'address'}."""
    address = address_from_str(args.get("address", ""), "address")
    record = get_counterparty(state, address)
    if record is None:
        raise LookupError(f"address: {address_to_str(address)} declared no counterparty kind")
    return {"address": address_to_str(record.address), "kind": record.kind, "device": record.device,
            "height": record.height}


def query_locked(state: StateReader, args: dict[str, str]) -> dict[str, Any]:
    """Credits locked in escrows and channels, and the account that holds them."""
    return {"locked": get_locked(state), "account": address_to_str(PAYMENTS_ACCOUNT)}
