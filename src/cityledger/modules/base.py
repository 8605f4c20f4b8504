"""What a module is, and the context its handlers run in.

A handler is a pure function of (context, message): it reads and writes state only through
`ctx.state`, and everything else it needs — height, block time, sender — is in the context, taken
from the block and the transaction. It never reads the clock, randomness, floats or the network.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, NamedTuple, Sequence

from ..core.encoding import Message
from ..core.errors import ErrorCatalog, ErrorKind
from ..core.events import Event, ValidatorUpdate
from ..core.keys import Signer
from ..core.state import Overlay, PrefixReader, StateReader
from ..core.types import Address

PARAM_BYTES = 8  # a parameter's stored value: a signed big-endian 64-bit integer


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
ParamSpec = tuple[int, int, int]  # (default, min, max)
ValidatorSetReader = Callable[[PrefixReader], tuple[ValidatorUpdate, ...]]
ValidatorAdopter = Callable[[Context, Sequence[ValidatorUpdate]], None]
StatelessCheck = Callable[[Any], None]


class SenderQuota(NamedTuple):
    """How many txs one sender may have admitted: per window of blocks, and pending at once."""

    window_blocks: int  # the window's length in blocks (0: no window quota)
    txs_per_window: int  # txs of the sender (failed ones too) per window
    max_pending: int  # txs of the sender admitted to the mempool and not yet in a block


# The quota of a sender, given (state, params, sender, signer): read once per window per sender.
QuotaReader = Callable[[StateReader, "Params", Address, Signer | None], SenderQuota]


@dataclass(frozen=True)
class Module:
    """A domain module as the application sees it: everything app/ needs of it, so app names none."""

    name: str
    prefix: int
    errors: ErrorCatalog
    handlers: dict[type[Message], Handler]
    queries: dict[str, QueryHandler] = field(default_factory=dict)
    init_genesis: GenesisHandler | None = None
    invariants: tuple[Invariant, ...] = ()
    params: dict[str, ParamSpec] = field(default_factory=dict)
    actions: dict[type, Handler] = field(default_factory=dict)  # governance actions this module executes
    # Optional hooks below: the app uses whichever modules provide them.
    # Where this module keeps the value of a parameter it declares: a key under its own prefix.
    param_key: Callable[[str], bytes] | None = None
    # The error a proposal gets whose action no module executes (the module that runs proposals).
    unknown_action: ErrorKind | None = None
    # The validator set the module keeps, read from committed state (the InitChain answer).
    validator_set: ValidatorSetReader | None = None
    # Takes the engine's genesis validators when the genesis file named none (CometBFT's genesis).
    adopt_validators: ValidatorAdopter | None = None
    # The per-sender admission quota (the ledger is feeless: quotas, not fees, hold off spam).
    sender_quota: QuotaReader | None = None
    # Costly checks of a message alone (no state), by message type: each raises TxError if the
    # message cannot pass. The solo engine's verifier processes run them beside the signature checks
    # of a submitted batch, importing each by name, so each must be a module-level function. A check
    # must refuse only what the message's handler refuses too: running it or not never changes a
    # result, it only does the handler's costly part ahead, on another core.
    stateless_checks: dict[type, StatelessCheck] = field(default_factory=dict)
    # Told, in this node's process, of a message whose stateless check passed in this node's own
    # verifier process, so the module can remember that verdict (keyed by content, never by tx).
    stateless_checked: dict[type, StatelessCheck] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for kind, check in self.stateless_checks.items():
            if not is_importable(check):
                raise ValueError(f"{self.name}: the stateless check of {kind.__name__} is not a module-level function")
        if self.params and self.param_key is None:
            raise ValueError(f"{self.name}: a module with params needs a param_key under its own prefix")
        for name in self.params:
            if self.param_key(name)[:1] != bytes((self.prefix,)):
                raise ValueError(f"{self.name}: param_key({name!r}) is not under the module's prefix "
                                 f"{self.prefix:#04x}")


def is_importable(function: Callable) -> bool:
    """True if `function` is found again by its module and qualified name (a worker imports it so)."""
    module = sys.modules.get(getattr(function, "__module__", None) or "")
    return module is not None and getattr(module, getattr(function, "__qualname__", ""), None) is function


def encode_param(value: int) -> bytes:
    """The stored value of a parameter."""
    return value.to_bytes(PARAM_BYTES, "big", signed=True)


def decode_param(raw: bytes) -> int:
    """A parameter's value from its stored bytes."""
    return int.from_bytes(raw, "big", signed=True)


def compute_param_tables(modules: Sequence[Module]) -> tuple[dict[str, ParamSpec], dict[str, bytes]]:
    """Every module's parameter specs and state keys by name; a name declared twice is refused."""
    specs: dict[str, ParamSpec] = {}
    keys: dict[str, bytes] = {}
    for module in modules:
        for name, spec in module.params.items():
            if name in specs:
                raise ValueError(f"params: {name!r} declared by two modules (second: {module.name})")
            specs[name] = spec
            keys[name] = module.param_key(name)
    return specs, keys


class Params:
    """Governance-controlled integer parameters, read through the state with module defaults."""

    def __init__(self, state: StateReader, specs: dict[str, ParamSpec], keys: dict[str, bytes]) -> None:
        self._state = state
        self._defaults = specs
        self._keys = keys

    def get(self, name: str) -> int:
        """The current value of a parameter (its default until governance changes it)."""
        if name not in self._defaults:
            raise KeyError(f"unknown parameter {name!r}")
        raw = self._state.get(self._keys[name])
        return self._defaults[name][0] if raw is None else decode_param(raw)

    def key(self, name: str) -> bytes:
        """The state key of a known parameter, under its declaring module's prefix."""
        return self._keys[name]

    def bounds(self, name: str) -> tuple[int, int] | None:
        """(min, max) of a known parameter, or None if unknown."""
        spec = self._defaults.get(name)
        return None if spec is None else (spec[1], spec[2])

    def names(self) -> Iterator[str]:
        return iter(sorted(self._defaults))
