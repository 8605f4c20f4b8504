"""What a resident holds, read from the node's public API for the accounts of the open wallet.

The wallet knows which pseudonymous accounts it derived (`Wallet.accounts`); for each one the page
asks the node for the devices, channels, escrows, data sets and reward enrollments of that account
(GET /accounts/{address}/..., modules/paging.py), the consents over each data set, and, signed by the
account's key, the vault service's access log of its data. Nothing of the wallet's credentials is
sent: only account addresses, and the log request's signature.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import httpx

from ...core.keys import PrivateKey
from ...core.types import address_to_str
from ...sdk import ApiError, Client
from ...sdk.vaults import LogBroken, sign_request, verify_vault_log

MAX_UI_PAGES = 10  # pages of each owner list read per account for one view (more: the section says so)
NO_VAULT_STATUS = 503  # what a node without the vault service ([telemetry] off) answers /vaults/*
CHECKED_NOTE = ("Checked: every entry is signed by the vault service and chained to the one before, and every "
                "head the service anchored on the ledger is in it.")
NO_VAULT_NOTE = ("This node runs no vault service ([telemetry] is not enabled), so it holds no record of your data "
                 "and no access log to show.")


@dataclass(frozen=True)
class Account:
    """One pseudonymous account of the wallet: its label (purpose/index), address and key."""

    label: str
    address: str
    key: PrivateKey


@dataclass
class Section:
    """One part of the page: its rows, whether more exist than were read, and why it failed, if it did."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    more: bool = False
    error: str | None = None
    note: str | None = None
    absent: bool = False  # the node does not offer this part at all (the note says why)


def wallet_accounts(wallet: Any) -> list[Account]:
    """The wallet's derived accounts, each with its address and key."""
    out = []
    for purpose, index in wallet.accounts():
        key = wallet.account(purpose, index)
        out.append(Account(f"{purpose}/{index}", address_to_str(key.address()), key))
    return out


def _pages(call: Callable[[str, str], Any], address: str) -> tuple[list[Any], bool]:
    """Up to MAX_UI_PAGES pages of an owner list; (items, whether more remain)."""
    items: list[Any] = []
    after = ""
    for _ in range(MAX_UI_PAGES):
        page = call(address, after)
        items += page.items
        if page.next is None:
            return items, False
        after = page.next
    return items, True


def _guarded(build: Callable[[Section], None]) -> Section:
    """Run one section's reads; a node error fills the section's error, not the whole page's."""
    section = Section()
    try:
        build(section)
    except ApiError as exc:
        section.error = f"node: {exc.message or exc}"
    except httpx.HTTPError as exc:
        section.error = f"node: unreachable ({type(exc).__name__})"
    return section


def _policy(node: Client, did: str) -> str:
    """A device's spending policy in a few words, or 'none'."""
    try:
        policy = node.get_policy(did)
    except ApiError as exc:
        if exc.status == 404:
            return "none"
        raise
    state = "frozen" if policy.frozen else ("in force" if policy.current else "set by a former owner")
    return f"{policy.daily_cap} a day, {policy.counterparty_cap} per counterparty ({state})"


def _per_account(call: Callable[[str, str], Any], accounts: list[Account],
                 row: Callable[[Account, Any], dict[str, Any]]) -> Section:
    """A section of one owner list: a row per item of each account's pages."""
    def build(section: Section) -> None:
        for account in accounts:
            items, more = _pages(call, account.address)
            section.more |= more
            section.rows += [row(account, item) for item in items]
    return _guarded(build)


def devices(node: Client, accounts: list[Account]) -> Section:
    """Devices each account owns or is offered, with their spending policies."""
    return _per_account(node.devices_of, accounts, lambda account, d: {
        "did": d.did, "kind": d.kind, "model": d.model, "status": d.status, "account": account.label,
        "relation": "owner" if d.owner == account.address else "offered to you", "policy": _policy(node, d.did)})


def _channel(account: Account, c: Any) -> dict[str, Any]:
    paying = c.payer == account.address
    return {"id": c.channel_id, "account": account.label, "role": "you pay" if paying else "you are paid",
            "other": c.payee if paying else c.payer, "deposit": c.deposit, "redeemed": c.redeemed,
            "balance": c.balance, "status": c.status}


def _escrow(account: Account, e: Any) -> dict[str, Any]:
    paying = e.payer == account.address
    return {"id": e.escrow_id, "account": account.label, "role": "you locked" if paying else "you receive",
            "other": e.payee if paying else e.payer, "amount": e.amount, "timeout_height": e.timeout_height}


def payments(node: Client, accounts: list[Account]) -> tuple[Section, Section]:
    """(channels, escrows) each account pays into or is paid from."""
    return _per_account(node.channels_of, accounts, _channel), _per_account(node.escrows_of, accounts, _escrow)


def data_sets(node: Client, accounts: list[Account]) -> tuple[Section, list[Account]]:
    """Data sets each account owns, each with its consents; and the accounts that own any."""
    def row(account: Account, d: Any) -> dict[str, Any]:
        consents = node.query("consent", "consents", data_set=d.id)
        return {"id": d.id, "account": account.label, "schema": d.schema_id, "device": d.device,
                "consents": [_consent(c) for c in consents["items"]], "more": consents["next"] is not None}

    section = _per_account(node.data_sets_of, accounts, row)
    section.more |= any(r["more"] for r in section.rows)
    labels = {r["account"] for r in section.rows}
    return section, [account for account in accounts if account.label in labels]


def _consent(raw: dict[str, Any]) -> dict[str, Any]:
    revoked = raw.get("revoked_height")
    return {"id": raw["id"], "consumer": raw["consumer"], "purpose": raw["purpose"],
            "period": f"{raw['from_height']} to {raw['to_height']}", "expiry_height": raw["expiry_height"],
            "state": f"revoked at {revoked}" if revoked else "granted"}


def _whole_log(node: Client, status: Any, account: Account) -> tuple[Any, list[Any], bool]:
    """(the first page's view, every entry of up to MAX_UI_PAGES pages, whether more remain) of one owner's log."""
    first, entries, after = None, [], 0
    for _ in range(MAX_UI_PAGES):
        log = node.vault_log(sign_request(status.chain_id, [account.key], "log", account.address, status.height,
                                          after_seq=after))
        first = log if first is None else first
        entries += log.entries
        if log.next_seq is None:
            return first, entries, False
        after = log.next_seq
    return first, entries, True


def access_log(node: Client, owners: list[Account]) -> Section:
    """Who read or erased each owning account's data: the vault service's log, signed for by the account,
    and checked against the heads the service anchored on the ledger when it was read whole."""
    def build(section: Section) -> None:
        status = node.status()
        for account in owners:
            try:
                log, entries, more = _whole_log(node, status, account)
            except ApiError as exc:
                if exc.status != NO_VAULT_STATUS:
                    raise
                section.absent, section.note = True, NO_VAULT_NOTE
                return
            section.more |= more
            section.rows += [{"seq": e.seq, "account": account.label, "kind": e.kind, "reader": e.reader,
                              "purpose": e.purpose, "data_set": e.data_set, "records": len(e.record_ids),
                              "height": e.height} for e in entries]
            if not more:
                try:
                    verify_vault_log(node, log.service, account.address, entries)
                except LogBroken as exc:
                    section.error = f"log of {account.label}: it does not match what the ledger holds ({exc})"
                    return
        if owners and not section.more:
            section.note = CHECKED_NOTE
    return _guarded(build)


def rewards(node: Client, accounts: list[Account]) -> Section:
    """Reward programme enrollments of each account: what each period paid, for how many trips."""
    return _per_account(node.enrollments_of, accounts, lambda account, e: {
        "programme": e.programme_id, "period": e.period, "account": account.label, "paid": e.paid, "trips": e.trips})


def read_holdings(node: Client, wallet: Any) -> dict[str, Any]:
    """Every section of the page below the credentials, read now."""
    accounts = wallet_accounts(wallet)
    channels, escrows = payments(node, accounts)
    sets, owners = data_sets(node, accounts)
    return {"accounts": accounts, "devices": devices(node, accounts), "channels": channels, "escrows": escrows,
            "data_sets": sets, "access_log": access_log(node, owners), "rewards": rewards(node, accounts)}
