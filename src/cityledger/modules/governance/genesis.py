"""Governance genesis: consortium members, threshold, validators, parameter overrides."""

from __future__ import annotations

from typing import Any, Sequence

from ...core.encoding import encode
from ...core.events import ValidatorUpdate
from ...core.state import Overlay, PrefixReader
from ...core.types import address_from_str
from ..base import Context, encode_param
from .handlers import MAX_VALIDATOR_POWER, set_validator_power
from .keys import CONSORTIUM_KEY, VALIDATORS_PREFIX
from .messages import MAX_MEMBERS, MAX_VALIDATORS, Consortium


def init_genesis(state: Overlay, section: Any, ctx: Context) -> None:
    """Apply {'members': [{'name', 'address'}], 'threshold': k, 'validators': [{'pub_key', 'power'}], 'params': {}}."""
    section = section or {}
    members = sorted({address_from_str(str(m.get("address", "")), f"governance.members[{i}].address")
                      for i, m in enumerate(section.get("members", []))})
    if not 1 <= len(members) <= MAX_MEMBERS:
        raise ValueError(f"governance.members: expected 1 to {MAX_MEMBERS} members, got {len(members)}")
    threshold = section.get("threshold", len(members) // 2 + 1)
    if not isinstance(threshold, int) or not 1 <= threshold <= len(members):
        raise ValueError(f"governance.threshold: expected 1 to {len(members)}, got {threshold!r}")
    state.set(CONSORTIUM_KEY, encode(Consortium(members, threshold)))
    validators = section.get("validators", [])
    if len(validators) > MAX_VALIDATORS:
        raise ValueError(f"governance.validators: expected at most {MAX_VALIDATORS}, got {len(validators)}")
    for index, entry in enumerate(validators):
        pub_key = _hex32(entry.get("pub_key"), f"governance.validators[{index}].pub_key")
        power = entry.get("power", 10)
        if not isinstance(power, int) or not 1 <= power <= MAX_VALIDATOR_POWER:
            raise ValueError(f"governance.validators[{index}].power: expected 1 to {MAX_VALIDATOR_POWER}, got {power!r}")
        set_validator_power(ctx, pub_key, power)
    for name, value in sorted(section.get("params", {}).items()):
        bounds = ctx.params.bounds(name)
        if bounds is None or not isinstance(value, int) or not bounds[0] <= value <= bounds[1]:
            raise ValueError(f"governance.params.{name}: expected a known parameter within {bounds}, got {value!r}")
        state.set(ctx.params.key(name), encode_param(value))


def get_validator_set(state: PrefixReader) -> tuple[ValidatorUpdate, ...]:
    """The validator set as the engine takes it at InitChain: every validator with its power."""
    return tuple(ValidatorUpdate("ed25519", key[-32:], int.from_bytes(value, "big"))
                 for key, value in state.iter_prefix(VALIDATORS_PREFIX))


def adopt_validators(ctx: Context, updates: Sequence[ValidatorUpdate]) -> None:
    """Take the engine's genesis validators (CometBFT's genesis.json) when app_state named none."""
    for update in updates:
        set_validator_power(ctx, update.pub_key, update.power)


def _hex32(value: Any, field: str) -> bytes:
    try:
        raw = bytes.fromhex(str(value))
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise ValueError(f"{field}: expected 64 hex digits (an Ed25519 public key), got {value!r}")
    return raw
