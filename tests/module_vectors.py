"""Module vectors: load tests/vectors/<module>.json and replay a case on an app (no tests here).

A vector file holds one module's story: named keys, a genesis, and a history of signed steps (one
transaction per block). Each case names its pre-state as the genesis plus the first `pre.blocks`
steps of the history, the transaction to deliver, and what must follow: ok with events, or an error
kind (codespace + registered name), then the queried values and the signer's account. The app, SDK
and CLI tests replay the same cases (consensus-specs tests/formats: pre, operation, post).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import msgspec

from cityledger.app import abc
from cityledger.app.application import CityApp
from cityledger.core.accounts import get_nonce
from cityledger.node.modules import default_modules
from cityledger.core.encoding import Message, encode
from cityledger.core.errors import TX
from cityledger.core.keys import PrivateKey, Signer, compute_address, make_signer
from cityledger.core.storage import Store
from cityledger.core.tx import build_tx
from cityledger.core.types import address_to_str
from cityledger.modules.bank import get_balance

VECTORS = Path(__file__).parent / "vectors"
MODULE_NAMES = ("bank", "batteries", "consent", "devices", "governance", "identity", "mobility", "payments")
GENESIS_TIME_NS = 1_700_000_000_000_000_000
BLOCK_INTERVAL_NS = 1_000_000_000
MAX_SHOWN_BYTES = 64  # longer byte fields (proofs, key material) show as length and hash; "hex" holds them


def message_types() -> list[type]:
    """Every message type the default modules handle."""
    return sorted({kind for module in default_modules() for kind in module.handlers}, key=lambda k: k.__name__)


_MESSAGES = msgspec.msgpack.Decoder(Union[tuple(message_types())])  # type: ignore[misc]


def catalogs() -> dict[str, dict[int, str]]:
    """codespace -> {code: registered name}, for the tx envelope and every module."""
    out = {TX.codespace: TX.codes()}
    for module in default_modules():
        out[module.errors.codespace] = module.errors.codes()
    return out


def error_kind(codespace: str, code: int) -> dict[str, str]:
    """The registered name of a (codespace, code) pair, as vectors state errors."""
    return {"codespace": codespace, "name": catalogs().get(codespace, {}).get(code, f"unregistered:{code}")}


# -- the file format ---------------------------------------------------------------------------

def key_entry(key: PrivateKey) -> dict[str, Any]:
    """A named key as stored: test keys are deterministic, so their seeds are part of the vectors."""
    return {"scheme": key.scheme, "seed": key.seed.hex(), "address": address_to_str(key.address())}


def readable(value: Any) -> Any:
    """A JSON view of a message's fields: short bytes as hex, long ones as {'len', 'sha256'}."""
    if isinstance(value, msgspec.Struct):
        return {name: readable(getattr(value, name)) for name in value.__struct_fields__}
    if isinstance(value, (bytes, bytearray)):
        if len(value) <= MAX_SHOWN_BYTES:
            return bytes(value).hex()
        return {"len": len(value), "sha256": hashlib.sha256(value).hexdigest()}
    if isinstance(value, (list, tuple)):
        return [readable(item) for item in value]
    return value


def message_entry(message: Message) -> dict[str, Any]:
    """A message as stored: its tag, a readable view of its fields, and its canonical bytes."""
    tag = type(message).__struct_config__.tag
    return {"type": tag, "fields": readable(message), "hex": encode(message).hex()}


def decode_message(entry: dict[str, Any]) -> Message:
    """The message of an entry; raise if its bytes and its readable view disagree."""
    message = _MESSAGES.decode(bytes.fromhex(entry["hex"]))
    if type(message).__struct_config__.tag != entry["type"] or readable(message) != entry["fields"]:
        raise ValueError(f"vector message {entry['type']}: the fields do not match the bytes")
    return message


@dataclass
class Step:
    """One signed transaction of a vector: who signs, for which account, which messages."""

    keys: list[PrivateKey]
    signer: Signer
    messages: list[Message]

    def tx(self, chain_id: str, nonce: int) -> bytes:
        """The signed transaction bytes with this nonce."""
        return build_tx(chain_id, self.keys, nonce, self.messages, signer=self.signer)

    def signer_address(self) -> bytes:
        """The account the step's transaction is sent from."""
        return compute_address(self.signer)


class VectorFile:
    """One module's vectors, with its keys resolved."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.module = data["module"]
        self.chain_id = data["chain_id"]
        self.genesis = data["genesis"]
        self.keys = {name: PrivateKey(entry["scheme"], bytes.fromhex(entry["seed"]))
                     for name, entry in data["keys"].items()}
        self.history = [self.step(entry) for entry in data["history"]]
        self.cases = data["cases"]

    @classmethod
    def load(cls, module: str) -> "VectorFile":
        return cls(json.loads((VECTORS / f"{module}.json").read_text()))

    def step(self, entry: dict[str, Any]) -> Step:
        """A stored step with its keys and messages resolved."""
        keys = [self.keys[name] for name in entry["signers"]]
        spec = entry.get("signer")
        signer = keys[0].signer() if spec is None else make_signer(
            spec["threshold"], [self.keys[name].public_key for name in spec["keys"]])
        return Step(keys, signer, [decode_message(m) for m in entry["messages"]])

    def pre(self, case: dict[str, Any]) -> list[Step]:
        """The history steps that make a case's pre-state."""
        return self.history[:case["pre"]["blocks"]]


def all_cases() -> list[tuple[str, str]]:
    """(module, case name) of every vector, for pytest ids."""
    out = []
    for module in MODULE_NAMES:
        out += [(module, case["name"]) for case in vectors_of(module).cases]
    return out


# -- replay on an app --------------------------------------------------------------------------

@dataclass
class Outcome:
    """What delivering a case's transaction gave."""

    ok: bool
    error: dict[str, str] | None
    events: list[dict[str, Any]]


def events_view(events) -> list[dict[str, Any]]:
    """Events as vectors store them: type and attributes in a dict."""
    return [{"type": e.type, "attributes": dict(e.attributes)} for e in events]


class AppReplay:
    """A CityApp on a fresh store at a vector's genesis; steps are delivered one per block."""

    def __init__(self, chain_id: str, genesis: dict[str, Any], path: Path) -> None:
        self.chain_id = chain_id
        self.store = Store(path)
        self.app = CityApp(self.store, default_modules(), chain_id)
        state = json.dumps(genesis, sort_keys=True).encode()
        self.app.init_chain(abc.InitChainRequest(chain_id=chain_id, time_ns=GENESIS_TIME_NS,
                                                 initial_height=1, app_state_bytes=state))
        self.height = 0

    @classmethod
    def reopen(cls, chain_id: str, path: Path) -> "AppReplay":
        """An app on an existing store (e.g. a copy of one), continuing at its last height."""
        replay = cls.__new__(cls)
        replay.chain_id = chain_id
        replay.store = Store(path)
        replay.app = CityApp(replay.store, default_modules(), chain_id)
        replay.height = replay.store.last_height()
        return replay

    def deliver(self, step: Step) -> Outcome:
        """check_tx then, if admitted, a block holding the tx (refused txs stay out, as in a mempool)."""
        raw = step.tx(self.chain_id, get_nonce(self.store, step.signer_address()))
        checked = self.app.check_tx(raw)
        if checked.code:
            return Outcome(False, error_kind(checked.codespace, checked.code), [])
        result = self.block(raw).tx_results[0]
        if result.code:
            return Outcome(False, error_kind(result.codespace, result.code), [])
        return Outcome(True, None, events_view(result.events))

    def block(self, *txs: bytes) -> abc.FinalizeBlockResult:
        """Finalize and commit the next block; block times are fixed steps from the genesis."""
        self.height += 1
        time_ns = GENESIS_TIME_NS + self.height * BLOCK_INTERVAL_NS
        result = self.app.finalize_block(abc.BlockRequest(height=self.height, time_ns=time_ns, txs=txs))
        self.app.commit()
        return result

    def query(self, path: str, args: dict[str, str]) -> Any:
        """A module query's JSON answer (vectors only hold queries that answer)."""
        result = self.app.query("/" + path, json.dumps(args).encode())
        if result.code:
            raise AssertionError(f"query {path} {args}: {result.log}")
        return json.loads(result.value)

    def account(self, address: bytes) -> dict[str, int]:
        """An account's nonce and balance."""
        return {"nonce": get_nonce(self.store, address), "balance": get_balance(self.store, address)}


def replay_pre(vectors: VectorFile, case: dict[str, Any], path: Path) -> AppReplay:
    """An app with the case's pre-state applied; every pre step must succeed."""
    replay = AppReplay(vectors.chain_id, vectors.genesis, path)
    for index, step in enumerate(vectors.pre(case)):
        outcome = replay.deliver(step)
        if not outcome.ok:
            raise AssertionError(f"{vectors.module} history[{index}] failed: {outcome.error}")
    return replay


def expected_outcome(case: dict[str, Any]) -> tuple[bool, dict[str, str] | None]:
    """(ok, error kind or None) a case expects."""
    expect = case["expect"]
    return "error" not in expect, expect.get("error")


_LOADED: dict[str, VectorFile] = {}


def vectors_of(module: str) -> VectorFile:
    """A module's vector file, loaded once per test session."""
    if module not in _LOADED:
        _LOADED[module] = VectorFile.load(module)
    return _LOADED[module]


def case_of(module: str, name: str) -> dict[str, Any]:
    """One case of a module's vectors, by name."""
    return next(case for case in vectors_of(module).cases if case["name"] == name)


def registered(error: dict[str, str]) -> tuple[str, int]:
    """(codespace, code) of a vector's error kind; raise if the name is not in the module's catalog."""
    names = {name: code for code, name in catalogs()[error["codespace"]].items()}
    return error["codespace"], names[error["name"]]


def open_copy(template: Path, folder: Path, chain_id: str) -> AppReplay:
    """An app on a copy of a template store, continuing at its height."""
    folder.mkdir(parents=True)
    shutil.copy(template, folder / "ledger.sqlite")
    return AppReplay.reopen(chain_id, folder / "ledger.sqlite")


def build_block(replay: AppReplay, ops: list, keys: dict[str, PrivateKey], chain_id: str) -> list[bytes]:
    """Signed txs for a block: each sender's nonces continue from the state, in block order."""
    txs, used = [], {}
    for name, messages in ops:
        step = Step([keys[name]], keys[name].signer(), messages)
        address = compute_address(step.signer)
        nonce = used.get(address, get_nonce(replay.store, address))
        used[address] = nonce + 1
        txs.append(step.tx(chain_id, nonce))
    return txs
