"""No input halts the state machine: every message type with hostile values through check_tx,
PrepareProposal, ProcessProposal and FinalizeBlock on the real app (issue 11, defects 1, 2 and 7).

Each hostile tx goes into a block of its own, so that every one meets the same well-prepared state;
at the end the recorded blocks are replayed on a fresh app, which must reach the same app hash at
every height with the same results.
"""

from __future__ import annotations

import ctypes
import gc
import json
import logging
from typing import Iterator

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import CHAIN_ID, make_chain
from hostile import (
    DEEP_JSON,
    NESTED_OBJECTS,
    HostileWorld,
    is_handler_failure,
    sign,
    strategy_for,
    variants,
)
from cityledger.app import abc
from cityledger.app import application as application_module
from cityledger.core.accounts import get_nonce
from cityledger.node.modules import default_modules
from cityledger.app.router import MessageRouter
from cityledger.core.encoding import Message
from cityledger.core.errors import ERR_HANDLER_FAILED, TX, ErrorCatalog, InvariantBroken, TxError
from cityledger.core.keys import PrivateKey
from cityledger.core.tx import MAX_TX_BYTES, build_tx
from cityledger.core.types import address_from_str
from cityledger.engines.solo.engine import SoloConfig, SoloEngine
from cityledger.modules.bank import ERRORS as BANK_ERRORS
from cityledger.modules.bank import Transfer
from cityledger.modules.base import Module
from cityledger.modules.devices import ERRORS as DEVICE_ERRORS
from cityledger.modules.devices import AcceptTransfer, BindDevice, RegisterDevice
from cityledger.modules.governance import ERRORS as GOVERNANCE_ERRORS
from cityledger.modules.governance import Vote
from cityledger.modules.identity import ERRORS as IDENTITY_ERRORS
from cityledger.modules.identity import (
    AnchorCredDef,
    AnchorRevRegDef,
    DeactivateDid,
    UpdateDid,
)
from cityledger.modules.identity.validation import check_endpoint, check_keys, is_name
from cityledger.modules.payments import ERRORS as PAYMENTS_ERRORS

CATALOGS = {catalog.codespace: catalog
            for catalog in (TX, BANK_ERRORS, DEVICE_ERRORS, GOVERNANCE_ERRORS, IDENTITY_ERRORS, PAYMENTS_ERRORS)}


def error_name(result: abc.TxResult) -> str:
    """The registered name of a rejection, e.g. 'invalid_did'."""
    assert result.code, f"expected a rejection, got success: {result}"
    return CATALOGS[result.codespace].codes()[result.code]


def assert_error(result: abc.TxResult, codespace: str, name: str) -> None:
    assert result.codespace == codespace and error_name(result) == name, result


def run_block(app, height: int, time_ns: int, raw: bytes) -> tuple[abc.TxResult, abc.TxResult]:
    """check_tx, PrepareProposal, ProcessProposal, then FinalizeBlock and Commit of one tx."""
    checked = app.check_tx(raw)
    request = abc.BlockRequest(height=height, time_ns=time_ns, txs=(raw,))
    prepared = app.prepare_proposal(request, MAX_TX_BYTES * 4)
    assert app.process_proposal(abc.BlockRequest(height=height, time_ns=time_ns, txs=tuple(prepared)))
    assert app.process_proposal(request) == (prepared == [raw])
    # FinalizeBlock gets the raw tx even when ProcessProposal would refuse it: a faulty proposer's
    # block must not stop the app either.
    delivered = app.finalize_block(request).tx_results[0]
    app.commit()
    return checked, delivered


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return HostileWorld(tmp_path_factory.mktemp("hostile"))


def send(world: HostileWorld, key: PrivateKey, message) -> tuple[abc.TxResult, abc.TxResult]:
    """One hostile tx from `key` at its next nonce, in a block of its own."""
    app, store = world.ledger.app, world.ledger.store
    raw = sign(CHAIN_ID, key, get_nonce(store, key.address()), message)
    world.ledger.time_ns += 1_000_000_000
    return run_block(app, store.last_height() + 1, world.ledger.time_ns, raw)


def test_every_message_type_has_a_hostile_baseline(world):
    tags = {kind.__struct_config__.tag for kind in MessageRouter(default_modules()).message_types()}
    assert set(world.baselines()) == tags


def test_invalid_hostile_values_of_every_message_type_are_clean_rejections(world, tmp_path):
    baselines = world.baselines()
    sent: dict[str, int] = {}
    for tag in sorted(baselines):
        key, message = baselines[tag]()
        for variant in variants(message):
            key, _ = baselines[tag]()
            checked, delivered = send(world, key, variant.message)
            where = f"{tag} {variant.path} {str(variant.message)[:300]}"
            assert not is_handler_failure(checked) and not is_handler_failure(delivered), (where, delivered)
            assert (checked.code, checked.codespace) == (delivered.code, delivered.codespace), (where, checked)
            if variant.must_reject:
                assert delivered.code, f"{where}: a hostile value was accepted"
            sent[tag] = sent.get(tag, 0) + 1
    assert set(sent) == set(baselines) and min(sent.values()) >= 5, sent
    world.ledger.app.check_invariants()
    replay_on_a_fresh_app(world.ledger.app, tmp_path)


def replay_on_a_fresh_app(app, tmp_path) -> None:
    """The recorded blocks on a fresh app give the same app hash and results at every height."""
    fresh = make_chain(tmp_path / "replay").app
    for height in range(1, app.store.last_height() + 1):
        block = app.store.get_block(height)
        result = fresh.finalize_block(abc.BlockRequest(height=height, time_ns=block.time_ns, txs=tuple(block.txs),
                                                       hash=block.hash))
        fresh.commit()
        assert result.app_hash == block.app_hash, f"height {height}"
        assert [(r.code, r.codespace, r.log) for r in result.tx_results] == \
               [(r.code, r.codespace, r.log) for r in block.results]
    fresh.check_invariants()


# -- the reproducers of the issue ------------------------------------------------------------------

def test_invalid_deactivate_did_with_trailing_newline_from_unfunded_key(world):
    stranger = PrivateKey.generate()
    assert get_nonce(world.ledger.store, stranger.address()) == 0
    checked, delivered = send(world, stranger, DeactivateDid(world.office.did + "\n"))
    assert_error(checked, "identity", "invalid_did")
    assert_error(delivered, "identity", "invalid_did")
    world.ledger.app.check_invariants()


def test_invalid_vote_with_negative_proposal_id(world):
    checked, delivered = send(world, world.city.members[2], Vote(-1, True))
    assert_error(checked, "governance", "unknown_proposal")
    assert_error(delivered, "governance", "unknown_proposal")
    assert "proposal_id" in delivered.log


def test_invalid_update_did_and_register_device_with_newline_did(world):
    _, update = send(world, world.victim_key, UpdateDid(world.victim + "\n", 1, world.victim_key.signer(), [], []))
    assert_error(update, "identity", "invalid_did")
    device = PrivateKey(2, bytes([0x74]) * 32)
    message = RegisterDevice("vehicle", "CityCar-e1", device.public_key, world.maker.did + "\n", b"", b"")
    _, register = send(world, world.maker.keys[0], message)
    assert_error(register, "devices", "manufacturer_not_trusted")


@pytest.mark.parametrize("payload", [NESTED_OBJECTS, DEEP_JSON])
def test_invalid_nested_json_in_anchors(world, payload):
    published = world.published
    _, cred_def = send(world, world.office_key, AnchorCredDef(world.office.did, published.schema_id, "n1", payload))
    assert_error(cred_def, "identity", "invalid_anchored_object")
    assert "nests" in cred_def.log
    message = AnchorRevRegDef(world.office.did, published.cred_def_id, "n1", 10, payload, "9" * 44,
                              "https://office.city.example/tails/x")
    _, registry = send(world, world.office_key, message)
    assert_error(registry, "identity", "invalid_anchored_object")


@pytest.mark.parametrize("presentation", [
    pytest.param("1e400", id="timestamp-1e400"),
    pytest.param("nan", id="timestamp-NaN"),
    pytest.param("deep", id="deep-nesting"),
    pytest.param("huge-int", id="timestamp-2**64"),
])
def test_invalid_bind_device_presentation(world, presentation):
    raw = {"1e400": world.presentation().replace(b'"timestamp": ', b'"timestamp": 1e400, "x": '),
           "nan": world.presentation().replace(b'"timestamp": ', b'"timestamp": NaN, "x": '),
           "deep": b'{"identifiers":' + DEEP_JSON + b"}",
           "huge-int": world.presentation(timestamp=2**64)}[presentation]
    world.ensure_offer()
    for key, message in ((world.binder, BindDevice(world.unbound_did, raw)),
                         (world.owner_b, AcceptTransfer(world.bound_did, raw))):
        checked, delivered = send(world, key, message)
        assert_error(checked, "devices", "binding_proof_rejected")
        assert_error(delivered, "devices", "binding_proof_rejected")


# -- the class: any handler bug is a deterministic rejection ---------------------------------------

class Probe(Message, tag="probe/1.0/raise"):
    """A test message whose handler raises what it names."""

    what: str


def _raise(ctx, msg: Probe) -> None:
    import os
    import sqlite3

    ctx.state.set(b"\x7f\x01probe", b"written before the failure")
    if msg.what == "value":
        raise ValueError(f"random text {os.urandom(8).hex()}")  # differs on every node
    if msg.what == "recursion":
        raise RecursionError("deep")
    if msg.what == "storage":
        raise sqlite3.OperationalError("disk I/O error")
    if msg.what == "invariant":
        raise InvariantBroken("supply changed")


PROBE = Module(name="probe", prefix=0x7F, errors=ErrorCatalog("probe"), handlers={Probe: _raise})


def probe_chain(tmp_path):
    return make_chain(tmp_path, modules=default_modules() + [PROBE])


@pytest.mark.parametrize("what", ["value", "recursion"])
def test_invalid_handler_bug_is_a_deterministic_rejection(tmp_path, caplog, what):
    one, two = probe_chain(tmp_path / "one"), probe_chain(tmp_path / "two")
    results = []
    for chain in (one, two):
        raw = chain.tx(chain.accounts[0], Probe(what))
        with caplog.at_level(logging.ERROR, logger="cityledger.app"):
            checked = chain.app.check_tx(raw)
            result = chain.block(raw)
        assert_error(checked, "tx", "handler_failed")
        assert_error(result.tx_results[0], "tx", "handler_failed")
        assert "probe/1.0/raise" in result.tx_results[0].log and "random" not in result.tx_results[0].log
        assert chain.app.store.get(b"\x7f\x01probe") is None  # the tx's writes were dropped
        assert get_nonce(chain.app.store, chain.accounts[0].address()) == 1  # its nonce was used
        results.append((result.app_hash, result.tx_results[0].log))
    assert results[0] == results[1]
    assert any(record.exc_info for record in caplog.records), "the bug must be logged with its traceback"


@pytest.mark.parametrize("what, error", [("storage", "OperationalError"), ("invariant", "InvariantBroken")])
def test_node_failures_still_stop_the_node(tmp_path, what, error):
    chain = probe_chain(tmp_path)
    raw = chain.tx(chain.accounts[0], Probe(what))
    with pytest.raises(Exception) as raised:
        chain.app.finalize_block(abc.BlockRequest(height=2, time_ns=2, txs=(raw,)))
    assert type(raised.value).__name__ == error


# -- PrepareProposal returns only what ProcessProposal accepts (defect 7) ---------------------------

def test_invalid_txs_are_dropped_by_prepare_proposal(chain):
    valid = [chain.tx(chain.accounts[0], Transfer(chain.accounts[1].address(), 1)) for _ in range(2)]
    forged = bytearray(chain.tx(chain.accounts[1], Transfer(chain.accounts[0].address(), 1)))
    forged[-1] ^= 1  # the last byte is the signature's
    oversized = build_tx(CHAIN_ID, [chain.accounts[2]], 0, [Transfer(b"\x01" * MAX_TX_BYTES, 1)])
    txs = (b"\xde\xad\xbe\xef", valid[0], b"\x00", bytes(forged), oversized, valid[1])
    request = abc.BlockRequest(height=2, time_ns=2, txs=txs)
    assert not chain.app.process_proposal(abc.BlockRequest(height=2, time_ns=2, txs=(b"\xde\xad\xbe\xef",)))
    prepared = chain.app.prepare_proposal(request, 10 * MAX_TX_BYTES)
    assert prepared == valid
    assert chain.app.process_proposal(abc.BlockRequest(height=2, time_ns=2, txs=tuple(prepared)))
    assert chain.app.prepare_proposal(request, len(valid[0])) == valid[:1]  # max_tx_bytes still holds


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_prepare_proposal_output_always_passes_process_proposal(chain, data):
    valid = [chain.tx(key, Transfer(chain.members[0].address(), 1)) for key in chain.accounts]
    junk = data.draw(st.lists(st.binary(max_size=300), max_size=8))
    mutated = data.draw(st.lists(st.sampled_from(valid).map(bytearray), max_size=3))
    for raw in mutated:
        raw[data.draw(st.integers(0, len(raw) - 1))] ^= data.draw(st.integers(1, 255))
    txs = data.draw(st.permutations(valid + junk + [bytes(raw) for raw in mutated]))
    max_bytes = data.draw(st.integers(0, 4_000))
    request = abc.BlockRequest(height=2, time_ns=2, txs=tuple(txs))
    prepared = chain.app.prepare_proposal(request, max_bytes)
    assert chain.app.process_proposal(abc.BlockRequest(height=2, time_ns=2, txs=tuple(prepared)))
    assert sum(map(len, prepared)) <= max_bytes
    kept_valid = [tx for tx in txs if tx in valid]
    assert prepared == kept_valid[:len(prepared)]  # the valid txs, in order, as many as fit


# -- the signature cache (defect 2) ----------------------------------------------------------------

def test_signature_cache_holds_admitted_txs_only(chain):
    stranger = PrivateKey.generate()
    rejected = build_tx(CHAIN_ID, [stranger], 1, [Transfer(b"\x01" * 3_900, 1)])
    assert_error(chain.app.check_tx(rejected), "tx", "nonce_out_of_order")
    assert chain.app.verified_cache_size() == (0, 0)
    admitted = chain.tx(chain.accounts[0], Transfer(chain.accounts[1].address(), 1))
    assert chain.app.check_tx(admitted).ok
    entries, size = chain.app.verified_cache_size()
    assert entries == 1 and size == len(admitted) + application_module.VERIFIED_ENTRY_OVERHEAD_BYTES
    chain.block(admitted)
    assert chain.app.verified_cache_size() == (0, 0)  # committed txs leave the cache


def test_signature_cache_is_bounded_by_bytes(chain, monkeypatch):
    monkeypatch.setattr(application_module, "MAX_VERIFIED_CACHE_BYTES", 3 * 2_000)
    key = chain.accounts[0]
    txs = [chain.tx(key, Transfer(chain.accounts[1].address(), 1)) for _ in range(10)]
    for raw in txs:
        assert chain.app.check_tx(raw).ok
    per_entry = len(txs[0]) + application_module.VERIFIED_ENTRY_OVERHEAD_BYTES
    assert chain.app.verified_cache_size() == (3 * 2_000 // per_entry, 3 * 2_000 // per_entry * per_entry)
    assert chain.app.precheck(txs[-1]) is chain.app._verified[chain.app.precheck(txs[-1]).tx_id][0]  # newest kept


# -- field names and whitespace ----------------------------------------------------------------------

def test_invalid_decode_error_names_the_field(chain):
    body = [CHAIN_ID, msgspec.msgpack.decode(msgspec.msgpack.encode(chain.accounts[0].signer())), 0, 0,
            [["bank/1.0/transfer", b"\x01" * 20, "five"]]]
    result = chain.app.check_tx(msgspec.msgpack.encode([body, []]))
    assert_error(result, "tx", "decode")
    assert "`body.messages[0].amount`" in result.log


def test_invalid_surrounding_whitespace_is_refused_everywhere():
    address = "city" + "ab" * 20
    for bad in (address + "\n", " " + address, address + " ", "\t" + address):
        with pytest.raises(ValueError, match="address"):
            address_from_str(bad)
    assert address_from_str(address) == bytes.fromhex("ab" * 20)
    for bad in ("https://x.example/\n", " https://x.example/", "https://x.example/ "):
        assert not check_endpoint(bad)
    for bad in ("v1\n", " v1", "v1 "):
        assert not is_name(bad)
    key = PrivateKey(1, b"\x05" * 32).public_key
    from cityledger.modules.identity import VerificationKey

    assert check_keys([VerificationKey("key-1\n", key, ["authentication"])])
    assert check_keys([VerificationKey("key-1", key, ["authentication"])]) is None


def test_handler_failed_is_a_registered_tx_error():
    assert TX.codes()[ERR_HANDLER_FAILED.code] == "handler_failed"
    assert isinstance(ERR_HANDLER_FAILED("x"), TxError)


# -- memory (defect 2's load) ------------------------------------------------------------------------

def _rss_bytes() -> int:
    """The process's resident memory, after garbage collection and after the C allocator has given
    back the free memory it can (glibc keeps freed 251 KB blocks on its heap once its dynamic mmap
    threshold has risen, which a long test session has done: that is the allocator's, not the node's)."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def _large_rejected_txs(key: PrivateKey, first: int, count: int) -> Iterator[bytes]:
    """~251 KB txs at nonce 1 from a key that never sent one: each correctly signed, each refused."""
    for index in range(first, first + count):
        to = index.to_bytes(4, "big") + b"\x01" * 3_896
        yield build_tx(CHAIN_ID, [key], 1, [Transfer(to, 1)] * 64)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [None, 1], ids=["check_tx", "submit_batch"])
def test_rejected_large_txs_do_not_grow_memory(tmp_path, workers):
    """Defect 2's load: 1,200 txs of ~251 KB from a fresh key (64 transfers with a 3,900-byte `to`,
    nonce 1), straight into check_tx or in batches of 64 through the solo engine (what
    POST /txs/batch calls, with a signature-verifier process); the node keeps none of them."""
    app = make_chain(tmp_path).app
    engine = None if workers is None else SoloEngine(app, SoloConfig(verify_workers=workers))
    stranger = PrivateKey.generate()

    def load(first: int, count: int) -> None:
        for start in range(first, first + count, 64):
            batch = list(_large_rejected_txs(stranger, start, 64))
            assert len(batch[0]) > 250_000
            results = ([app.check_tx(raw) for raw in batch] if engine is None
                       else [submitted.result for submitted in engine.submit_batch(batch)])
            for result in results:
                assert_error(result, "tx", "nonce_out_of_order")

    try:
        load(0, 128)  # warm up the allocator with the same shapes
        before = _rss_bytes()
        load(128, 1_216)
        grown = _rss_bytes() - before
    finally:
        if engine is not None:
            engine.stop()
    assert grown < 50 * 1024 * 1024, f"RSS grew by {grown / 2**20:.0f} MiB"
    assert app.verified_cache_size() == (0, 0)
    assert engine is None or engine.pending_count() == 0


def test_invalid_txs_through_the_solo_engine_leave_nothing_behind(chain):
    engine = SoloEngine(chain.app, SoloConfig(verify_workers=0))
    stranger = PrivateKey.generate()
    admitted = chain.tx(chain.accounts[0], Transfer(chain.accounts[1].address(), 1))
    batch = list(_large_rejected_txs(stranger, 0, 3)) + [b"\xde\xad", admitted]
    results = [submitted.result for submitted in engine.submit_batch(batch)]
    assert [error_name(r) for r in results[:4]] == ["nonce_out_of_order"] * 3 + ["decode"]
    assert results[4].ok
    assert chain.app.verified_cache_size()[0] == 1 and engine.pending_count() == 1
    assert engine.produce_block() == 1
    assert chain.app.verified_cache_size() == (0, 0)


def test_invalid_txs_at_and_past_the_size_limit(chain):
    key = chain.accounts[0]
    size = MAX_TX_BYTES - len(build_tx(CHAIN_ID, [key], 0, [Transfer(b"", 1)])) - 3  # bin 32 header: 3 bytes more than bin 8
    at_limit = build_tx(CHAIN_ID, [key], 0, [Transfer(b"\x01" * size, 1)])
    assert len(at_limit) == MAX_TX_BYTES  # the signature's 64 bytes do not depend on the payload
    past_limit = build_tx(CHAIN_ID, [key], 0, [Transfer(b"\x01" * (size + 1), 1)])
    assert_error(chain.app.check_tx(at_limit), "bank", "invalid_address")  # decoded, then refused by the bank
    assert_error(chain.app.check_tx(past_limit), "tx", "too_large")
    request = abc.BlockRequest(height=2, time_ns=2, txs=(past_limit, at_limit))
    assert chain.app.prepare_proposal(request, 2 * MAX_TX_BYTES) == [at_limit]
    result = chain.app.finalize_block(request)
    assert [error_name(r) for r in result.tx_results] == ["too_large", "invalid_address"]
    chain.app.commit()
    chain.app.check_invariants()


@pytest.mark.parametrize("path, args, height", [
    ("/governance/proposal", {"id": "-1"}, 0),
    ("/governance/proposal", {"id": str(2**64)}, 0),
    ("/identity/status_list", {"id": "x", "timestamp": str(2**70)}, 0),
    ("/identity/did", {"did": "did:city:abc\n"}, 0),
    ("/store", None, 2**63),
    ("/store", None, -1),
])
def test_invalid_query_arguments_are_answered_not_raised(chain, path, args, height):
    data = b"\x00" if args is None else json.dumps(args).encode()
    result = chain.app.query(path, data, height)
    assert result.code in (1, 2) and result.height == chain.app.store.last_height(), result


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(data=st.data())
def test_random_messages_never_fail_a_handler(world, data):
    kinds = MessageRouter(default_modules()).message_types()
    published = world.published
    strings = [world.office.did, world.victim, world.bound_did, world.unbound_did, world.maker.did,
               published.schema_id, published.cred_def_id, published.rev_reg_id, "vehicle", "key-1",
               "https://office.city.example/tails", "authentication", "assertionMethod"]
    kind = data.draw(st.sampled_from(kinds))
    message = data.draw(strategy_for(msgspec.inspect.type_info(kind), strings))
    keys = [world.office_key, world.victim_key, world.owner_a, world.owner_b, world.maker.keys[0]]
    key = data.draw(st.sampled_from(keys + world.city.members))
    raw = sign(CHAIN_ID, key, world.ledger.app.get_pending_nonce(key.address()), message)
    result = world.ledger.app.check_tx(raw)
    assert not is_handler_failure(result), (message, result)
    if world.ledger.app.is_block_tx(raw):
        return
    assert result.codespace == "tx" and result.code, result  # what a block may not hold, check_tx refuses
