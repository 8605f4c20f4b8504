"""Answers of the owner-list routes (api/routes/owned.py): what one pseudonymous account holds.

Each is a page: at most MAX_OWNED_RESULTS items and `next`, the `after` of the following page (null on
the last); modules/paging.py says how a page is read.
"""

from __future__ import annotations

import msgspec

from .payments import ChannelView, EscrowView, VoucherKeyView


class _View(msgspec.Struct, kw_only=True, frozen=True):
    """Base of response bodies."""


class DeviceView(_View):
    """A device registry entry; owners appear as pseudonymous 'city…' accounts."""

    did: str
    kind: str
    model: str
    manufacturer: str
    owner: str | None  # null until bound
    pending_owner: str | None  # null unless a transfer is offered
    epoch: int
    status: str
    registered_height: int
    updated_height: int


class DataSetView(_View):
    """A registered data set: its owner account, device, gateway and consents so far (no data)."""

    id: str
    owner: str
    owner_did: str | None
    schema_id: str
    commitment: str
    device: str
    gateway: str
    consents: int
    last_interval: int
    registered_height: int


class EnrollmentView(_View):
    """An account's enrollment in one reward programme period: rewards paid and trips."""

    programme_id: int
    period: int
    account: str
    pseudonym_key: VoucherKeyView  # {scheme, key}: the key that signs this enrollment's trip commitments
    paid: int
    trips: int


class OwnedDevicesView(_View):
    """GET /accounts/{address}/devices: devices the account owns or is offered."""

    items: list[DeviceView]
    next: str | None


class OwnedChannelsView(_View):
    """GET /accounts/{address}/channels: channels the account pays into or is paid from."""

    items: list[ChannelView]
    next: str | None


class OwnedEscrowsView(_View):
    """GET /accounts/{address}/escrows: open escrows the account locked or is to receive."""

    items: list[EscrowView]
    next: str | None


class OwnedDataSetsView(_View):
    """GET /accounts/{address}/data-sets: data sets the account owns."""

    items: list[DataSetView]
    next: str | None


class OwnedEnrollmentsView(_View):
    """GET /accounts/{address}/enrollments: the account's reward enrollments, every programme and period."""

    items: list[EnrollmentView]
    next: str | None


OWNED_VIEW_TYPES = (DeviceView, DataSetView, EnrollmentView, OwnedDevicesView, OwnedChannelsView, OwnedEscrowsView,
                    OwnedDataSetsView, OwnedEnrollmentsView)
