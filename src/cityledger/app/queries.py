"""ABCI Query paths.

    /store                 data = raw state key; value, and with prove a tree proof, at `height`
    /<module>/<name>       data = JSON object of string arguments; value = JSON result
    /auth/nonce            data = 20-byte address; value = the next nonce as a decimal string
"""

from __future__ import annotations

import json
from typing import Sequence

from ..core.accounts import get_nonce
from ..core.storage import Store
from ..modules.base import Module
from . import abc

QUERY_NOT_FOUND = 1
QUERY_BAD_REQUEST = 2
MAX_QUERY_HEIGHT = 2**63 - 1  # heights are signed 64-bit (SQLite INTEGER, CometBFT int64)


def run_query(store: Store, modules: Sequence[Module], path: str, data: bytes, height: int,
              prove: bool) -> abc.QueryResult:
    """Answer a query; errors come back as a non-zero code with a message."""
    last = store.last_height()
    height = height or last
    try:
        if not 0 <= height <= MAX_QUERY_HEIGHT:
            raise ValueError(f"height: expected 0 to {MAX_QUERY_HEIGHT}, got {height}")
        if path == "/store":
            return _query_store(store, data, height, prove)
        if path == "/auth/nonce":
            return abc.QueryResult(key=data, value=str(get_nonce(store, data)).encode(), height=last)
        return _query_module(store, modules, path, data, last)
    except LookupError as exc:
        return abc.QueryResult(code=QUERY_NOT_FOUND, codespace="query", log=str(exc).strip("'\""), height=height)
    except (ValueError, OverflowError) as exc:  # OverflowError: an argument too large for SQLite or 8 bytes
        return abc.QueryResult(code=QUERY_BAD_REQUEST, codespace="query", log=str(exc)[:300], height=last)


def _query_store(store: Store, key: bytes, height: int, prove: bool) -> abc.QueryResult:
    if height == store.last_height() and not prove:
        value = store.get(key)
        return abc.QueryResult(key=key, value=value or b"", height=height,
                               log="" if value is not None else "absent")
    value, proof, _ = store.get_at(key, height)
    return abc.QueryResult(key=key, value=value or b"", proof=proof.to_bytes() if prove else b"", height=height,
                           log="" if value is not None else "absent")


def _query_module(store: Store, modules: Sequence[Module], path: str, data: bytes, height: int) -> abc.QueryResult:
    parts = path.strip("/").split("/")
    if len(parts) != 2:
        raise ValueError(f"path: expected /<module>/<query>, got {path!r}")
    module = next((m for m in modules if m.name == parts[0]), None)
    if module is None or parts[1] not in module.queries:
        raise LookupError(f"path: no query {path!r}")
    try:
        args = json.loads(data or b"{}")
    except json.JSONDecodeError:
        raise ValueError("data: expected a JSON object of query arguments") from None
    if not isinstance(args, dict):
        raise ValueError("data: expected a JSON object of query arguments")
    result = module.queries[parts[1]](store, {str(k): str(v) for k, v in args.items()})
    return abc.QueryResult(value=json.dumps(result, sort_keys=True).encode(), height=height)
