"""Test helpers: a fresh in-process chain with funded accounts, and block production."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from cityledger.app import abc
from cityledger.app.application import CityApp
from cityledger.node.modules import default_modules
from cityledger.core.errors import TX
from cityledger.core.keys import PrivateKey
from cityledger.core.storage import Store
from cityledger.core.tx import build_tx
from cityledger.core.types import address_to_str
from cityledger.node.modules import default_modules

CHAIN_ID = "test-city-1"
GENESIS_BALANCE = 1_000_000_000


def fixed_key(index: int, scheme: int = 1) -> PrivateKey:
    """A deterministic key for tests and vectors."""
    return PrivateKey(scheme, bytes([index + 1]) * 32)


@dataclass
class Chain:
    """An app on a real store, with helpers to sign txs and make blocks."""

    app: CityApp
    store: Store
    members: list[PrivateKey]
    accounts: list[PrivateKey]
    nonces: dict[bytes, int] = field(default_factory=dict)
    height: int = 0
    time_ns: int = 1_700_000_000_000_000_000

    def tx(self, key: PrivateKey, *messages, nonce: int | None = None, expiry_height: int = 0,
           chain_id: str = CHAIN_ID) -> bytes:
        """Sign a tx with the next nonce of key (or the one given)."""
        address = key.address()
        if nonce is None:
            nonce = self.nonces.get(address, 0)
            self.nonces[address] = nonce + 1
        return build_tx(chain_id, [key], nonce, list(messages), expiry_height=expiry_height)

    def block(self, *txs: bytes) -> abc.FinalizeBlockResult:
        """Finalize and commit a block of these txs."""
        self.height += 1
        self.time_ns += 1_000_000_000
        result = self.app.finalize_block(abc.BlockRequest(height=self.height, time_ns=self.time_ns, txs=tuple(txs)))
        self.app.commit()
        return result


def genesis_state(members: list[PrivateKey], accounts: list[PrivateKey], threshold: int) -> dict:
    return {
        "governance": {
            "members": [{"name": f"Org {i}", "address": address_to_str(k.address())} for i, k in enumerate(members)],
            "threshold": threshold,
            "validators": [{"pub_key": fixed_key(90).public_key.key.hex(), "power": 10}],
        },
        "bank": {"allocations": [{"address": address_to_str(k.address()), "amount": GENESIS_BALANCE}
                                 for k in members + accounts]},
    }


def make_chain(tmp_path: Path, n_accounts: int = 4, n_members: int = 3, threshold: int = 2, modules=None,
               params: dict | None = None) -> Chain:
    """A committed genesis on a fresh store in tmp_path (`params`: governed parameters' genesis values)."""
    members = [fixed_key(i) for i in range(n_members)]
    accounts = [fixed_key(10 + i) for i in range(n_accounts)]
    store = Store(tmp_path / "ledger.sqlite")
    app = CityApp(store, modules or default_modules(), CHAIN_ID)
    genesis = genesis_state(members, accounts, threshold)
    if params:
        genesis["governance"]["params"] = params
    state = json.dumps(genesis, sort_keys=True).encode()
    app.init_chain(abc.InitChainRequest(chain_id=CHAIN_ID, time_ns=1, initial_height=1, app_state_bytes=state))
    return Chain(app, store, members, accounts)


def assert_error_kind(result, kind) -> None:
    """Assert that a check or delivery result, a TxOutcome or a TxError failed with this registered
    error kind (an ErrorKind such as bank's ERR_INSUFFICIENT_FUNDS), naming both sides if not."""
    names = {module.errors.codespace: module.errors.codes() for module in default_modules()}
    names["tx"] = TX.codes()
    got = names.get(result.codespace, {}).get(result.code, f"unregistered code {result.code}")
    log = getattr(result, "log", None) or getattr(result, "message", "")
    assert (result.codespace, got) == (kind.codespace, kind.name), \
        f"expected {kind.codespace}/{kind.name}, got {result.codespace}/{got}: {log}"
