"""/consent/data_sets_of: the data sets an account owns, paged by {'after'} (modules/paging.py)."""

from __future__ import annotations

from typing import Any

from ...core.state import StateReader
from ...core.types import address_from_str
from ..paging import scan_owned
from .handlers import decode_data_set
from .keys import DATA_SETS_PREFIX
from .queries import render_data_set


def query_data_sets_of(state: StateReader, args: dict[str, str]) -> dict[str, Any]:
    """The data sets whose owner is {'owner'} (a 'city…' account)."""
    owner = address_from_str(args.get("owner", ""), "owner")
    return scan_owned(state, DATA_SETS_PREFIX, args, decode_data_set, lambda record: record.owner == owner,
                      render_data_set)
