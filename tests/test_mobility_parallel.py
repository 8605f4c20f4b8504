"""Claim proofs verified in the solo engine's verifier processes: a worker's verdict serves this
node's check_tx and FinalizeBlock (one verification per claim), a forged proof in a batch is
refused for that claim only, and a validator that never saw the verdict verifies by itself and
reaches the same state."""

from __future__ import annotations

import msgspec
import pytest

from helpers import assert_error_kind, make_chain
from mobility_fixtures import PSEUDONYM, RewardCity, stored_claims
from cityledger.app import abc
from cityledger.engines.solo import engine as solo
from cityledger.engines.solo.engine import SoloConfig, SoloEngine
from cityledger.engines.solo.verifier import FLAG_CHECKED, FLAG_SIGNED, check_tx_bytes
from cityledger.modules import mobility
from cityledger.modules.bank.keeper import KEEPER as BANK
from cityledger.modules.identity.keeper import KEEPER as IDENTITY
from cityledger.modules.mobility import ClaimTrip, ProofVerifier, get_programme
from cityledger.modules.mobility import errors as E
from cityledger.modules.mobility.stateless import _worker_verifier
from cityledger.node.modules import default_modules, proof_verifier


def count_verifications(monkeypatch, **verifiers: ProofVerifier) -> dict[str, int]:
    """Empty each verifier's cache and count its ezkl verifications by name."""
    calls = dict.fromkeys(verifiers, 0)
    for name, verifier in verifiers.items():
        verifier._cache.clear()
        real = verifier.verify_uncached

        def counted(*args, _name=name, _real=real):
            calls[_name] += 1
            return _real(*args)

        monkeypatch.setattr(verifier, "verify_uncached", counted)
    return calls


@pytest.fixture
def batch(tmp_path):
    """A city with two enrolled accounts and a batch: a valid claim, a forged one, a valid one."""
    rewards = RewardCity(tmp_path / "a")
    rewards.enroll(rewards.driver).raise_for_error()
    rewards.enroll(rewards.stranger, PSEUDONYM, "did:city:second-vehicle").raise_for_error()
    claims = stored_claims()
    forged = msgspec.structs.replace(claims["fair"], score_fixed=claims["good"].score_fixed)  # not what it proves
    nonce = rewards.ledger.nonce(rewards.driver.signer())
    txs = [rewards.ledger.build([rewards.driver], [claims["good"]]),
           rewards.ledger.build([rewards.stranger], [forged]),
           rewards.ledger.build([rewards.driver], [claims["fair"]], nonce=nonce + 1)]
    return rewards, txs


class InProcessWorkers:
    """The verifier processes' work, done in this process (the engine's code path, no processes)."""

    def __init__(self, app) -> None:
        self.codec, self.checks = app.codec, app.stateless_checks()

    def workers(self) -> int:
        return 2

    def verify(self, chunks):
        for chunk in chunks:
            yield bytes(check_tx_bytes(self.codec, self.checks, raw) for raw in chunk)


def assert_outcome(rewards, results) -> None:
    assert results[0].result.ok and results[2].result.ok, [r.result.log for r in results]
    assert_error_kind(results[1].result, E.ERR_PROOF_REJECTED)
    assert get_programme(rewards.ledger.store, 1).claims == 2


def test_stateless_check_flags_each_claim(batch):
    rewards, txs = batch
    app = rewards.ledger.app
    assert app.stateless_checks() == {ClaimTrip: mobility.check_claim}
    flags = [check_tx_bytes(app.codec, app.stateless_checks(), raw) for raw in txs]
    assert flags == [FLAG_CHECKED, FLAG_SIGNED, FLAG_CHECKED]


def test_worker_verdict_serves_check_tx_and_finalize_block(batch, monkeypatch):
    """One ezkl verification per valid claim (the worker's); the forged one is judged again here."""
    rewards, txs = batch
    calls = count_verifications(monkeypatch, node=proof_verifier(), worker=_worker_verifier())
    monkeypatch.setattr(solo, "MIN_PARALLEL_BATCH_BYTES", 1)  # three claims take the workers' path
    engine = SoloEngine(rewards.ledger.app, SoloConfig(verify_workers=2))
    monkeypatch.setattr(engine, "_verifier", InProcessWorkers(rewards.ledger.app))
    results = engine.submit_batch(txs)
    assert calls == {"node": 1, "worker": 3}
    assert engine.produce_block() == rewards.ledger.height()
    assert_outcome(rewards, results)
    assert calls == {"node": 1, "worker": 3}  # FinalizeBlock verified nothing again


def test_validator_without_the_verdicts_verifies_and_agrees(batch, monkeypatch, tmp_path):
    """Replaying the same blocks on an app whose verifier saw no worker gives the same app hashes."""
    rewards, txs = batch
    engine = SoloEngine(rewards.ledger.app, SoloConfig(verify_workers=2))
    monkeypatch.setattr(solo, "MIN_PARALLEL_BATCH_BYTES", 1)
    monkeypatch.setattr(engine, "_verifier", InProcessWorkers(rewards.ledger.app))
    engine.submit_batch(txs)
    engine.produce_block()
    other = ProofVerifier()
    calls = count_verifications(monkeypatch, other=other)
    modules = [m for m in default_modules() if m.name != "mobility"]
    modules.append(mobility.new_module(bank=BANK, identity=IDENTITY, verifier=other))
    replica = make_chain(tmp_path / "b", modules=modules)
    store = rewards.ledger.store
    for height in range(1, store.last_height() + 1):
        block = store.get_block(height)
        result = replica.app.finalize_block(abc.BlockRequest(height=height, time_ns=block.time_ns,
                                                             txs=tuple(block.txs), hash=block.hash))
        replica.app.commit()
        assert result.app_hash == store.height_info(height).app_hash, f"height {height}"
    assert calls == {"other": 2}  # the two paid claims, verified by the replica itself
    assert get_programme(replica.store, 1).claims == 2


@pytest.mark.slow
def test_batch_through_worker_processes(batch, monkeypatch):
    """The real verifier processes: the node's process verifies only the forged proof."""
    rewards, txs = batch
    calls = count_verifications(monkeypatch, node=proof_verifier())
    monkeypatch.setattr(solo, "MIN_PARALLEL_BATCH_BYTES", 1)
    engine = SoloEngine(rewards.ledger.app, SoloConfig(verify_workers=2))
    try:
        results = engine.submit_batch(txs)
        engine.produce_block()
    finally:
        engine.stop()
    assert_outcome(rewards, results)
    assert calls == {"node": 1}


def test_invalid_stateless_check_not_importable_by_name():
    """A worker process imports each check by name: a lambda or a partial is refused at once."""
    from cityledger.modules.base import Module

    with pytest.raises(ValueError, match="ClaimTrip is not a module-level function"):
        Module(name="mobility", prefix=0x06, errors=E.ERRORS, handlers={}, stateless_checks={ClaimTrip: lambda m: None})
