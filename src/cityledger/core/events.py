"""What a state transition reports besides its writes: events, and changes to the validator set.

Handlers emit them, the app returns them to the engine, and the engine passes them on to CometBFT
(abci.Event, abci.ValidatorUpdate), so they sit below all three.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple


class Event(NamedTuple):
    """An ABCI event: a type and sorted (key, value) string attributes (a tuple: built per tx, hot)."""

    type: str
    attributes: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ValidatorUpdate:
    """A validator's new voting power (0 removes it); pub_key_type is 'ed25519'."""

    pub_key_type: str
    pub_key: bytes
    power: int
