"""The gateway's signature workers (real worker processes) and the pruning of its proof index."""

from __future__ import annotations

import random

import pytest

from cityledger.core.keys import SCHEME_ED25519, SCHEME_P256, PrivateKey, PublicKey
from cityledger.offchain.telemetry import VaultKey, verify_message
from cityledger.offchain.telemetry.broker import device_topic
from cityledger.offchain.telemetry.gateway import GatewayState
from cityledger.offchain.telemetry.verify import check_checked_signature, check_message, finish_message
from cityledger.offchain.telemetry.workers import MAX_VERIFY_WORKERS, SignatureWorkers, WorkerError

from telemetry_helpers import Fleet, vehicle_samples

T0 = 1_700_000_000


@pytest.fixture
def fleet(tmp_path):
    return Fleet(VaultKey.generate(), tmp_path)


def _checks(count: int) -> tuple[list[tuple[PublicKey, bytes, bytes]], list[bool]]:
    """Signature checks of both schemes, every third one over a message that was not signed."""
    checks, expected = [], []
    keys = [PrivateKey.generate(SCHEME_ED25519), PrivateKey.generate(SCHEME_P256)]
    for index in range(count):
        key = keys[index % 2]
        message = b"window %d" % index
        signed = message if index % 3 else message + b"!"
        checks.append((key.public_key, message, key.sign(signed)))
        expected.append(index % 3 != 0)
    return checks, expected


@pytest.mark.slow
def test_workers_answer_every_check_in_order():
    workers = SignatureWorkers(2)
    workers.start()
    try:
        first, first_expected = _checks(41)
        second, second_expected = _checks(7)
        # Two batches in flight at once, answered in the order submitted.
        tickets = [workers.submit(first), workers.submit(second), workers.submit([])]
        assert [workers.result(ticket) for ticket in tickets] == [first_expected, second_expected, []]
        # A malformed key or signature is a failed check, not a dead worker.
        odd = [(PublicKey(9, b"\x01" * 32), b"m", b"\x00" * 64), (PublicKey(SCHEME_ED25519, b""), b"m", b"")]
        assert workers.result(workers.submit(odd)) == [False, False]
    finally:
        workers.close()


@pytest.mark.slow
def test_a_dead_worker_is_an_error_not_a_verdict():
    workers = SignatureWorkers(1)
    workers.start()
    workers._procs[0].kill()
    workers._procs[0].wait()
    checks, _ = _checks(3)
    with pytest.raises(WorkerError, match="died"):
        workers.result(workers.submit(checks))
    workers.close()


@pytest.mark.parametrize("count", [0, MAX_VERIFY_WORKERS + 1])
def test_invalid_worker_count_names_the_field(count):
    with pytest.raises(ValueError, match="verify_workers"):
        SignatureWorkers(count)


def test_split_check_gives_what_verify_message_gives(fleet):
    """check_message + a worker's verdict + finish_message is verify_message, refusals included."""
    device = fleet.add()
    rng = random.Random(1)
    good = device.seal(T0, vehicle_samples(rng, T0))
    forged = bytearray(device.seal(T0 + 10, vehicle_samples(rng, T0 + 10)))
    forged[-1] ^= 1
    for raw, last_seq in [(good, None), (good, 0), (bytes(forged), 0), (bytes(forged), 1)]:
        checked = check_message(raw, fleet.lookup)
        try:
            expected = verify_message(raw, fleet.lookup, last_seq)
        except ValueError as exc:
            with pytest.raises(ValueError, match=str(exc).split(":")[0]):
                finish_message(checked, last_seq, check_checked_signature(checked))
            continue
        assert finish_message(checked, last_seq, check_checked_signature(checked)) == expected


def _record(fleet: Fleet, device, seq: int):
    start = T0 + 10 * seq
    return verify_message(device.seal(start, vehicle_samples(random.Random(seq), start)), fleet.lookup, None)


def test_prune_deletes_only_anchored_intervals_before_the_cutoff(fleet, tmp_path):
    state = GatewayState(tmp_path / "state.sqlite")
    device = fleet.add()
    records = {interval: [_record(fleet, device, interval * 10 + i) for i in range(3)] for interval in (1, 2, 3)}
    for interval, batch in records.items():
        state.commit(interval, batch)
    state.save_root(1, b"\x01" * 32, 3, anchored=True)
    state.save_root(2, b"\x02" * 32, 3, anchored=False)  # computed, not yet anchored: kept
    assert state.prune(before=1) == 0  # nothing before interval 1
    assert state.prune(before=10, limit=2) == 2 and state.prune(before=10) == 1
    assert state.record_ids(1) == [] and state.find_record(records[1][0].record_id) is None
    assert state.prune(before=10) == 0  # interval 2 is not anchored: neither it nor 3 goes
    assert len(state.record_ids(2)) == 3 and len(state.record_ids(3)) == 3
    assert [r.interval for r in state.roots()] == [1, 2]  # roots stay
    state.close()


def test_gateway_answers_proofs_within_the_retention_window_then_prunes(fleet, tmp_path):
    """A Gateway run without a broker (process_batch on messages as paho hands them over, checked in
    its own thread): proofs of an interval anchored longer ago than proof_retention_s are gone, the
    later ones still verify against their roots."""
    from types import SimpleNamespace

    from cityledger.offchain.telemetry import is_included
    from cityledger.offchain.telemetry.gateway import Gateway
    from cityledger.offchain.vaults import VaultHost

    now, anchored = [float(T0)], {}
    gateway = Gateway(tmp_path / "gw", VaultHost(tmp_path / "vaults"), fleet.lookup,
                      lambda root, count, interval: anchored.__setitem__(interval, root), "127.0.0.1", 1, "unused",
                      interval_s=60, clock=lambda: now[0], verify_workers=0, proof_retention_s=120)
    device = fleet.add()
    ids = {}
    for step in range(4):  # one record in each of four intervals
        now[0] = float(T0 + 60 * step)
        start = T0 + 10 * step
        raw = device.seal(start, vehicle_samples(random.Random(step), start))
        gateway.process_batch([SimpleNamespace(topic=device_topic(device.config.device_did), payload=raw, mid=step, qos=1)])
        ids[gateway.current_interval()] = verify_message(raw, fleet.lookup, None).record_id
        gateway.close_finished_intervals()
    now[0] = float(T0 + 60 * 4)
    gateway.close_finished_intervals()
    assert sorted(anchored) == sorted(ids) and gateway.stored == 4
    # Now in interval 4 with a 2-interval window: intervals 0 and 1 are pruned, 2 and 3 still proven.
    first = T0 // 60
    assert gateway.inclusion_proof(ids[first]) is None and gateway.inclusion_proof(ids[first + 1]) is None
    for interval in (first + 2, first + 3):
        at, proof = gateway.inclusion_proof(ids[interval])
        assert at == interval and is_included(anchored[interval], ids[interval], proof)
    gateway.close()
    gateway.vaults.close()
