"""InitChain: apply the genesis file's app_state through each module, once.

The genesis state is committed at height initial_height - 1, so a node killed right after InitChain
restarts with it; a repeated InitChain with the same genesis returns the same app hash, and one with
a different genesis is refused.
"""

from __future__ import annotations

import json
from typing import Callable, Sequence

from ..core.events import ValidatorUpdate
from ..core.hashing import sha256
from ..core.state import Overlay
from ..core.storage import BlockRecord, Store
from ..modules.base import Context, Module
from . import abc

ContextFactory = Callable[[Overlay, int, int], Context]


def compute_genesis_hash(chain_id: str, app_state_bytes: bytes) -> bytes:
    """Identifies a genesis: chain id and app_state bytes."""
    return sha256(chain_id.encode() + b"\x00" + app_state_bytes)


def run_init_chain(store: Store, modules: Sequence[Module], chain_id: str, request: abc.InitChainRequest,
                   make_context: ContextFactory) -> abc.InitChainResult:
    """Apply genesis (or recognise it as already applied) and return the genesis app hash."""
    if request.chain_id != chain_id:
        raise ValueError(f"chain_id: genesis is for {request.chain_id!r}, this node runs {chain_id!r}")
    genesis_hash = compute_genesis_hash(request.chain_id, request.app_state_bytes)
    stored = store.get_meta("genesis_hash")
    if stored is not None:
        if stored != genesis_hash:
            raise ValueError("genesis: this node was initialised with a different genesis file")
        info = store.height_info(request.initial_height - 1)
        return abc.InitChainResult(info.app_hash if info else b"", _validators(store, modules))
    try:
        app_state = json.loads(request.app_state_bytes or b"{}")
    except json.JSONDecodeError as exc:
        raise ValueError(f"app_state: not valid JSON ({exc})") from None
    state = Overlay(store)
    ctx = make_context(state, request.initial_height - 1, request.time_ns)
    for module in modules:
        if module.init_genesis is not None:
            module.init_genesis(state, app_state.get(module.name), ctx)
    if not ctx.validator_updates and request.validators:
        # Without a module that keeps a validator set the app answers none, and CometBFT keeps its own.
        for module in modules:
            if module.adopt_validators is not None:
                module.adopt_validators(ctx, request.validators)
    writes = state.sorted_writes()
    height = request.initial_height - 1
    tree = store.tree.apply(None, height, dict(writes))
    block = BlockRecord(height, request.time_ns, b"", tree.root_hash, b"", [], [], [])
    store.commit_block(block, writes, tree, [], {"genesis_hash": genesis_hash, "chain_id": request.chain_id.encode()})
    return abc.InitChainResult(tree.root_hash, _validators(store, modules))


def _validators(store: Store, modules: Sequence[Module]) -> tuple[ValidatorUpdate, ...]:
    return tuple(update for module in modules if module.validator_set is not None
                 for update in module.validator_set(store))
