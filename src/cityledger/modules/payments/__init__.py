"""payments: device spending policies, escrow and unidirectional payment channels with vouchers."""

from functools import partial

from ...core.statekeys import PREFIX_PAYMENTS
from ..base import Module
from .errors import ERRORS
from .expected import Bank, Devices
from .genesis import init_genesis
from .handlers import (
    compute_channel_balance,
    get_channel,
    get_escrow,
    get_locked,
    process_close,
    process_finalize,
    process_lock_escrow,
    process_open_channel,
    process_redeem,
    process_refund_escrow,
    process_release_escrow,
    process_start_close,
    process_top_up,
)
from .invariants import check_payments
from .keys import PAYMENTS_ACCOUNT
from .messages import (
    COUNTERPARTY_KINDS,
    DAY_NS,
    ChannelRecord,
    CloseChannel,
    DeclareCounterparty,
    EscrowRecord,
    FinalizeChannel,
    FreezeDevice,
    LockEscrow,
    OpenChannel,
    PolicyRecord,
    RedeemVoucher,
    RefundEscrow,
    ReleaseEscrow,
    SetPolicy,
    StartClose,
    TopUpChannel,
)
from .policy import compute_day, get_policy, process_declare_counterparty, process_freeze, process_set_policy
from .owned import query_channels_of, query_escrows_of
from .quotas import PARAMS, param_key, read_sender_quota
from .queries import query_channel, query_counterparty, query_escrow, query_locked, query_policy
from .vouchers import DOMAIN_VOUCHER, compute_voucher_bytes, sign_voucher, verify_voucher


def new_module(bank: Bank, devices: Devices) -> Module:
    """The payments module, given bank's keeper (to move credits) and devices' (to know owners)."""
    return Module(
        name="payments",
        prefix=PREFIX_PAYMENTS,
        errors=ERRORS,
        handlers={
            SetPolicy: partial(process_set_policy, devices),
            FreezeDevice: partial(process_freeze, devices),
            DeclareCounterparty: partial(process_declare_counterparty, devices),
            LockEscrow: partial(process_lock_escrow, bank, devices),
            ReleaseEscrow: partial(process_release_escrow, bank),
            RefundEscrow: partial(process_refund_escrow, bank),
            OpenChannel: partial(process_open_channel, bank, devices),
            TopUpChannel: partial(process_top_up, bank, devices),
            RedeemVoucher: partial(process_redeem, bank),
            CloseChannel: partial(process_close, bank),
            StartClose: process_start_close,
            FinalizeChannel: partial(process_finalize, bank),
        },
        queries={"channel": query_channel, "escrow": query_escrow, "policy": partial(query_policy, devices),
                 "counterparty": query_counterparty, "locked": query_locked, "channels_of": query_channels_of,
                 "escrows_of": query_escrows_of},
        init_genesis=init_genesis,
        invariants=(partial(check_payments, bank),),
        params=PARAMS,
        param_key=param_key,
        sender_quota=partial(read_sender_quota, devices),
    )


__all__ = [
    "Bank", "COUNTERPARTY_KINDS", "ChannelRecord", "CloseChannel", "DAY_NS", "DOMAIN_VOUCHER", "DeclareCounterparty",
    "Devices", "ERRORS", "EscrowRecord", "FinalizeChannel", "FreezeDevice", "LockEscrow", "OpenChannel",
    "PAYMENTS_ACCOUNT", "PolicyRecord", "RedeemVoucher", "RefundEscrow", "ReleaseEscrow", "SetPolicy", "StartClose",
    "TopUpChannel", "compute_channel_balance", "compute_day", "compute_voucher_bytes", "get_channel", "get_escrow",
    "get_locked", "get_policy", "new_module", "sign_voucher", "verify_voucher",
]
