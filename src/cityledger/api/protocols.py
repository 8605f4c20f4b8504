"""What the API needs from a node: narrow protocols, so any engine behind app.abc.Engine can be served."""

from __future__ import annotations

from typing import Any, Callable, Protocol

from ..app.abc import Engine, QueryResult
from ..core.errors import ErrorCatalog
from ..core.storage import BlockRecord, HeightInfo


class MempoolView(Protocol):
    """Optional: an engine whose mempool is in-process (solo) lets the API tell pending from unknown."""

    size_bytes: int

    def contains(self, tx_id: bytes) -> bool: ...


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


class AppLike(Protocol):
    """The ABCI query connection, plus what the API reads for accounts and tx views."""

    chain_id: str
    modules: list[ModuleLike]

    def query(self, path: str, data: bytes, height: int = 0, prove: bool = False) -> QueryResult: ...


class NodeLike(Protocol):
    """A running node as cityledger.node.runner.Node assembles it."""

    store: StoreLike
    app: AppLike
    # Optionally also: engine.mempool (a MempoolView), engine.fatal_error() (health), and the counters
    # engine.blocks_committed, txs_committed, last_block_ms (metrics).
    engine: Engine

    def start(self) -> None: ...

    def stop(self) -> None: ...
