"""What a module is, and the context its handlers run in.

A handler is a pure function of (context, message): it reads and writes state only through
`ctx.state`, and everything else it needs — height, block time, sender — is in the context, taken
from the block and the transaction. It never reads the clock, randomness, floats or the network.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from ..core.encoding import Message
from ..core.errors import ErrorCatalog
from ..core.events import Event, ValidatorUpdate
from ..core.keys import Signer
from ..core.state import Overlay, PrefixReader, StateReader
from ..core.types import Address


@dataclass(slots=True)
class Context:
    """What a handler may know: the block, the transaction, and the state through a journal."""

    state: Overlay
    chain_id: str
    height: int
    time_ns: int
    sender: Address = Address(b"")
    signer: Signer | None = None
    tx_id: bytes = b""
    events: list[Event] = field(default_factory=list)
    validator_updates: list[ValidatorUpdate] = field(default_factory=list)
    params: "Params | None" = None
    actions: Any = None  # the app's governance action router (decode, execute)
    record_events: bool = True  # False in check_tx, whose events nobody reads

    def emit(self, kind: str, **attributes: Any) -> None:
        """Record an event with sorted string attributes."""
        if not self.record_events:
            return
        pairs = [(name, value.hex() if isinstance(value, bytes) else str(value)) for name, value in attributes.items()]
        pairs.sort()
        self.events.append(Event(kind, tuple(pairs)))


Handler = Callable[[Context, Any], None]
QueryHandler = Callable[[StateReader, dict[str, str]], Any]
GenesisHandler = Callable[[Overlay, Any, "Context"], None]
Invariant = Callable[[PrefixReader], None]


@dataclass(frozen=True)
class Module:
    """A domain module as the application sees it."""

    name: str
    prefix: int
    errors: ErrorCatalog
    handlers: dict[type[Message], Handler]
    queries: dict[str, QueryHandler] = field(default_factory=dict)
    init_genesis: GenesisHandler | None = None
    invariants: tuple[Invariant, ...] = ()
    params: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # name -> (default, min, max)
    actions: dict[type, Handler] = field(default_factory=dict)  # governance actions this module executes


class Params:
    """Governance-controlled integer parameters, read through the state with module defaults."""

    def __init__(self, state: StateReader, defaults: dict[str, tuple[int, int, int]], key_of: Callable[[str], bytes],
                 decode_int: Callable[[bytes], int]) -> None:
        self._state = state
        self._defaults = defaults
        self._key_of = key_of
        self._decode_int = decode_int

    def get(self, name: str) -> int:
        """The current value of a parameter (its default until governance changes it)."""
        if name not in self._defaults:
            raise KeyError(f"unknown parameter {name!r}")
        raw = self._state.get(self._key_of(name))
        return self._defaults[name][0] if raw is None else self._decode_int(raw)

    def bounds(self, name: str) -> tuple[int, int] | None:
        """(min, max) of a known parameter, or None if unknown."""
        spec = self._defaults.get(name)
        return None if spec is None else (spec[1], spec[2])

    def names(self) -> Iterator[str]:
        return iter(sorted(self._defaults))
