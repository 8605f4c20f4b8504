"""The operator redeems on chain by itself: each channel's newest voucher once its session has ended.

Every `REDEEM_INTERVAL_S` (and right after the idle timeout closes sessions) a round collects the
channels whose newest voucher is above what the chain last redeemed and whose vehicle has no open
session: the session ended and its vehicle paid the final bill, or it was closed for idleness or
for falling behind, or its vehicle has not paid the last cost for `FINAL_VOUCHER_GRACE_S`. One
`channel_redeem` per channel, the whole round handed to `csms.settle` at once (the node's signs them
with the operator key and submits them together), run off the event loop. A redeemed voucher moves
the book's `terms` (redeemed amount, nonce) and is written to the store before the sessions it
settled are forgotten, so a restarted CSMS does not redeem it again; the node's `settle` also
checks the chain first, which covers a crash between the commit and that write.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import TYPE_CHECKING, Callable

from .accounting import ChannelTerms, Session, Voucher

if TYPE_CHECKING:
    from .csms import Csms

LOG = logging.getLogger("cityledger.charging")
REDEEM_INTERVAL_S = 1.0  # how often the CSMS looks for vouchers to redeem (a round is one batch of txs)
MAX_REDEEMS_PER_ROUND = 1_000  # channels redeemed in one round; the rest wait for the next
# How long a vehicle may take to pay an ended session's last cost before its channel is redeemed without it.
FINAL_VOUCHER_GRACE_S = 60

# Redeems a batch of (channel terms, newest voucher) on chain: for each, None once the chain holds it,
# or why it was refused. Called off the event loop.
Settle = Callable[[list[tuple[ChannelTerms, Voucher]]], list["str | None"]]


def due_vouchers(csms: "Csms", now_s: float) -> list[tuple[str, Voucher]]:
    """(idToken, newest voucher) of every channel due for a redeem, at most MAX_REDEEMS_PER_ROUND."""
    due = []
    for token, book in csms.books.items():
        newest = book.newest
        if newest is None or newest.nonce <= book.terms.nonce or csms.refused_redeems.get(token) == newest.nonce:
            continue
        session = csms.sessions.get(csms.current.get(token, ""))
        if session is not None and not _settled(csms, session, now_s):
            continue
        due.append((token, newest))
        if len(due) == MAX_REDEEMS_PER_ROUND:
            break
    return due


def _settled(csms: "Csms", session: Session, now_s: float) -> bool:
    """Whether a vehicle's current session is over for good: ended, and paid or given up on."""
    if not session.ended:
        return False
    return csms.unpaid_micro(session) <= 0 or session.stop_requested or now_s - session.touched_s >= \
        FINAL_VOUCHER_GRACE_S


async def redeem_round(csms: "Csms", now_s: float | None = None) -> int:
    """Redeem every due channel's newest voucher through `csms.settle`; how many the chain now holds."""
    if csms.settle is None:
        return 0
    async with csms.redeem_lock:  # the periodic round and the idle timeout's never overlap
        now_s = time.time() if now_s is None else now_s
        due = due_vouchers(csms, now_s)
        if not due:
            return 0
        items = [(csms.books[token].terms, voucher) for token, voucher in due]
        try:
            answers = await asyncio.to_thread(csms.settle, items)
        except Exception as error:  # noqa: BLE001 - the node is unreachable or stopping: the next round retries
            LOG.warning("redeeming %d vouchers failed: %r", len(items), error)
            return 0
        done = 0
        for (token, voucher), refusal in zip(due, answers):
            if refusal is None:
                _mark_redeemed(csms, token, voucher)
                done += 1
            else:  # not retried until the vehicle pays a newer voucher (or the CSMS restarts)
                csms.refused_redeems[token] = voucher.nonce
                LOG.warning("channel %d: redeem of voucher %d refused: %s", voucher.channel_id, voucher.nonce, refusal)
        _forget_settled(csms, {token for (token, _), refusal in zip(due, answers) if refusal is None}, now_s)
        return done


def _mark_redeemed(csms: "Csms", token: str, voucher: Voucher) -> None:
    """Move the book's view of the chain to the redeemed voucher and write it (before anything is forgotten)."""
    book = csms.books.get(token)
    if book is None or book.terms.channel_id != voucher.channel_id or voucher.nonce <= book.terms.nonce:
        return  # the vehicle moved to another channel meanwhile, or a later round got further
    book.terms = dataclasses.replace(book.terms, redeemed=voucher.amount, nonce=voucher.nonce)
    csms.redeemed_txs += 1
    csms.persist_book(token)


def _forget_settled(csms: "Csms", tokens: set[str], now_s: float) -> None:
    """Drop the ended sessions of these vehicles that the chain has now paid (or that were given up on)."""
    for session_id, session in list(csms.sessions.items()):
        if session.id_token not in tokens or not session.ended:
            continue
        book = csms.books[session.id_token]
        paid = session.base_micro + session.cost_micro <= book.terms.redeemed
        given_up = book.covered_micro <= book.terms.redeemed and now_s - session.touched_s >= FINAL_VOUCHER_GRACE_S
        if paid or given_up:
            csms.forget_session(session_id)


async def run_redeemer(csms: "Csms", interval_s: float = REDEEM_INTERVAL_S) -> None:
    """Redeem rounds until cancelled."""
    while True:
        await asyncio.sleep(interval_s)
        await redeem_round(csms)
