"""What the API needs from a node: narrow protocols, so any engine behind app.abc.Engine can be served.

The engine's whole surface (submission, mempool, pending nonces, counters, fatal error) is
app/abc.Engine; a node is what node/runner.Node assembles.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Protocol

from ..app.abc import Engine, QueryResult
from ..core.errors import ErrorCatalog
from ..core.storage import BlockRecord, HeightInfo
from ..offchain.passport import PassportStore


class StoreLike(Protocol):
    """Committed blocks and tx locations (read-only, from any thread)."""

    def last_height(self) -> int: ...

    def height_info(self, height: int) -> HeightInfo | None: ...

    def get_block(self, height: int) -> BlockRecord | None: ...

    def find_tx(self, tx_id: bytes) -> tuple[int, int] | None: ...


class ModuleLike(Protocol):
    name: str
    errors: ErrorCatalog
    queries: dict[str, Callable[..., Any]]


class TxDecoder(Protocol):
    """Decodes a committed tx's bytes for display (raises core.errors.TxError if it cannot)."""

    def decode(self, raw: bytes, tx_id: bytes | None = None) -> Any: ...


class AppLike(Protocol):
    """The ABCI query connection, plus what the API reads for accounts and tx views."""

    chain_id: str
    modules: list[ModuleLike]
    codec: TxDecoder

    def query(self, path: str, data: bytes, height: int = 0, prove: bool = False) -> QueryResult: ...


class NodeLike(Protocol):
    """A running node as cityledger.node.runner.Node assembles it."""

    store: StoreLike
    app: AppLike
    engine: Engine
    issuers: Mapping[str, Any]  # the issuer offices hosted by this node, by DID (node/issuers.py)
    passports: PassportStore  # the battery passport service hosted by this node (node/passports.py)

    def start(self) -> None: ...

    def stop(self) -> None: ...
