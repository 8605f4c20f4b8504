"""InitChain: apply the genesis file's app_state through each module, once.

The genesis state is committed at height initial_height - 1, so a node killed right after InitChain
restarts with it; a repeated InitChain with the same genesis returns the same app hash, and one with
a different genesis is refused.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from ..core.hashing import sha256
from ..core.storage import BlockRecord
from . import abc
from ..core.state import Overlay

if TYPE_CHECKING:
    from .application import CityApp


def compute_genesis_hash(chain_id: str, app_state_bytes: bytes) -> bytes:
    """Identifies a genesis: chain id and app_state bytes."""
    return sha256(chain_id.encode() + b"\x00" + app_state_bytes)


def run_init_chain(app: "CityApp", request: abc.InitChainRequest) -> abc.InitChainResult:
    """Apply genesis (or recognise it as already applied) and return the genesis app hash."""
    if request.chain_id != app.chain_id:
        raise ValueError(f"chain_id: genesis is for {request.chain_id!r}, this node runs {app.chain_id!r}")
    genesis_hash = compute_genesis_hash(request.chain_id, request.app_state_bytes)
    stored = app.store.get_meta("genesis_hash")
    if stored is not None:
        if stored != genesis_hash:
            raise ValueError("genesis: this node was initialised with a different genesis file")
        info = app.store.height_info(request.initial_height - 1)
        return abc.InitChainResult(info.app_hash if info else b"", _validators(app))
    try:
        app_state = json.loads(request.app_state_bytes or b"{}")
    except json.JSONDecodeError as exc:
        raise ValueError(f"app_state: not valid JSON ({exc})") from None
    state = Overlay(app.store)
    ctx = app._context(state, request.initial_height - 1, request.time_ns)
    for module in app.modules:
        if module.init_genesis is not None:
            module.init_genesis(state, app_state.get(module.name), ctx)
    if not ctx.validator_updates and request.validators:
        from ..modules.governance.handlers import set_validator_power

        for update in request.validators:
            set_validator_power(ctx, update.pub_key, update.power)
    writes = state.sorted_writes()
    height = request.initial_height - 1
    tree = app.store.tree.apply(None, height, dict(writes))
    block = BlockRecord(height, request.time_ns, b"", tree.root_hash, b"", [], [], [])
    app.store.commit_block(block, writes, tree, [], {"genesis_hash": genesis_hash,
                                                      "chain_id": request.chain_id.encode()})
    app._reset_check_state()
    return abc.InitChainResult(tree.root_hash, _validators(app))


def _validators(app: "CityApp") -> tuple[abc.ValidatorUpdate, ...]:
    from ..modules.governance.keys import VALIDATORS_PREFIX

    return tuple(abc.ValidatorUpdate("ed25519", key[-32:], int.from_bytes(value, "big"))
                 for key, value in app.store.iter_prefix(VALIDATORS_PREFIX))
