"""Dashboard aggregates over committed blocks' events, each block folded once, in the API process.

Devices by kind and payments per day have no counter in the state, and counting them from the state
would scan every device or channel per request. Instead this folds the events of each committed block
once, in height order, and keeps only the sums: per device kind, and per day the voucher redemptions
(by the payee's declared counterparty kind: "charger" is a charging operator) and channels opened. A
request folds at most MAX_FOLD_BLOCKS new blocks, so its cost is bounded; on a long chain the first
requests catch up step by step and every answer says up to which height it counts (`counted_to`).
Only aggregate numbers are kept: no DID, address or channel id outlives the fold.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime, timezone
from typing import Callable

from ..errors import ApiError

DAY_NS = 86_400 * 10**9  # a day of block time (UTC)
MAX_FOLD_BLOCKS = 2_000  # blocks one data request folds into the sums; a chain further behind catches up over requests
MAX_CHART_DAYS = 90  # days kept and answered by the payments-per-day chart
UNDECLARED = "undeclared"  # the kind of a payee that declared no counterparty kind

Lookup = Callable[[str, str, dict[str, str]], dict]  # (module, query, args) -> result


def show_day(day: int) -> str:
    """A day number (block time // DAY_NS) as a UTC date, YYYY-MM-DD (display only)."""
    return datetime.fromtimestamp(day * 86_400, timezone.utc).strftime("%Y-%m-%d")


class Day:
    """One day's payment sums."""

    def __init__(self) -> None:
        self.redeemed = Counter()  # vouchers redeemed, by payee kind
        self.paid = Counter()  # micro-credits those redemptions paid, by payee kind
        self.opened = 0  # channels opened


class Tally:
    """Sums over the events of blocks 1..counted_to; fold() goes on from there."""

    def __init__(self, store, lookup: Lookup) -> None:
        self.store, self.lookup = store, lookup
        self.lock = threading.Lock()
        self.counted_to = 0
        self.registered: Counter = Counter()  # devices registered, by kind
        self.decommissioned: Counter = Counter()
        self.days: dict[int, Day] = {}

    def fold(self) -> int:
        """Fold up to MAX_FOLD_BLOCKS blocks after counted_to; the height now counted to."""
        with self.lock:
            top = min(self.store.last_height(), self.counted_to + MAX_FOLD_BLOCKS)
            for height in range(self.counted_to + 1, top + 1):
                block = self.store.get_block(height)
                if block is not None:  # a height the store lacks (pruned) adds nothing
                    for result in block.results:
                        if result.code == 0:
                            for kind, attributes in result.events:
                                self._event(block.time_ns // DAY_NS, kind, dict(attributes))
                self.counted_to = height
            for day in sorted(self.days)[:-MAX_CHART_DAYS]:
                del self.days[day]
            return self.counted_to

    def _event(self, day: int, kind: str, attributes: dict[str, str]) -> None:
        if kind == "device_registered":
            self.registered[attributes.get("device_kind", "")] += 1
        elif kind == "device_decommissioned":
            record = self._find("devices", "device", {"did": attributes.get("device", "")})
            self.decommissioned[record.get("kind", "") if record else ""] += 1
        elif kind == "payments_channel_opened":
            self.days.setdefault(day, Day()).opened += 1
        elif kind == "payments_voucher_redeemed":
            payee = self.payee_kind(attributes.get("channel_id", ""))
            entry = self.days.setdefault(day, Day())
            entry.redeemed[payee] += 1
            paid = attributes.get("paid", "0")
            entry.paid[payee] += int(paid) if paid.isascii() and paid.isdigit() else 0

    def payee_kind(self, channel_id: str) -> str:
        """The counterparty kind the channel's payee declared (two point reads), or UNDECLARED."""
        channel = self._find("payments", "channel", {"id": channel_id})
        if channel is None:
            return UNDECLARED
        declared = self._find("payments", "counterparty", {"address": channel["payee"]})
        return UNDECLARED if declared is None else str(declared["kind"])

    def _find(self, module: str, query: str, args: dict[str, str]) -> dict | None:
        try:
            return self.lookup(module, query, args)
        except ApiError:  # not found, or a module this node does not run
            return None

    def device_kinds(self) -> dict[str, int]:
        """Devices registered and not decommissioned, by kind."""
        with self.lock:
            kinds = set(self.registered) | set(self.decommissioned)
            return {kind: self.registered[kind] - self.decommissioned[kind] for kind in sorted(kinds)}

    def payment_days(self, count: int) -> list[tuple[int, dict]]:
        """The last `count` days with payment events, oldest first (copies: the fold goes on meanwhile)."""
        with self.lock:
            return [(day, {"redeemed": dict(self.days[day].redeemed), "paid": dict(self.days[day].paid),
                           "opened": self.days[day].opened}) for day in sorted(self.days)[-count:]]
