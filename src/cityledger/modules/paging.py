"""Owner lists: a bounded, resumable scan of one collection for the records of one account.

The queries that answer "the devices / channels / escrows / data sets / enrollments of this account"
(a resident's own page, docs/PORTAL.md) have no owner index to read: they scan their collection in
key order, keep the records that match, and stop after MAX_OWNED_RESULTS matches or
MAX_OWNED_SCAN records read, whichever comes first. 'next' is then the cursor to pass as {'after'}
(the hex of the last key read, after the collection's prefix); null once the collection is read.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from ..core.state import StateReader

MAX_OWNED_RESULTS = 100  # records answered per page
MAX_OWNED_SCAN = 10_000  # records read per page: bounds a query's cost whatever the collection's size
MAX_CURSOR_BYTES = 512  # the longest key suffix of any scanned collection (a DID or data set id, and ids)
_HEX = re.compile(r"(?:[0-9a-fA-F]{2})*")


def parse_cursor(args: dict[str, str]) -> bytes:
    """{'after'}: '' (the start) or the hex key suffix a previous page answered as 'next'."""
    text = args.get("after", "")
    # fullmatch, not bytes.fromhex alone: fromhex lets spaces and newlines through.
    if not isinstance(text, str) or len(text) > 2 * MAX_CURSOR_BYTES or not _HEX.fullmatch(text):
        raise ValueError(f"after: expected '' or an even number of hex digits, at most {2 * MAX_CURSOR_BYTES} "
                         f"(a previous page's 'next'), got {str(text)[:40]!r}")
    return bytes.fromhex(text)


def scan_owned(state: StateReader, prefix: bytes, args: dict[str, str], decode: Callable[[bytes], Any],
               keep: Callable[[Any], bool], render: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    """One page of the records under prefix that keep() accepts, after {'after'}: {'items', 'next'}."""
    after = parse_cursor(args)
    start = prefix + after if after else None
    items: list[dict[str, Any]] = []
    scanned = 0
    for key, raw in getattr(state, "iter_prefix")(prefix):
        if start is not None and key <= start:
            continue
        scanned += 1
        record = decode(raw)
        if keep(record):
            items.append(render(record))
        if len(items) == MAX_OWNED_RESULTS or scanned == MAX_OWNED_SCAN:
            return {"items": items, "next": key[len(prefix):].hex()}
    return {"items": items, "next": None}
