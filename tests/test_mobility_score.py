"""The driving score off chain: features from 1 Hz samples in integers, the points formula and its
clipping, the shipped ONNX graph rebuilt byte for byte, the pinned circuit files, and the verdict
cache that lets FinalizeBlock reuse check_tx's verification."""

from __future__ import annotations

import shutil

import pytest

from cityledger.modules.mobility import ProofVerifier, circuit_dir, compute_instances
from cityledger.modules.mobility.proofs import PINNED_DIGESTS, is_field_element
from cityledger.offchain.mobility.circuit import compute_commitment, quantise
from cityledger.offchain.mobility.features import Sample, compute_features
from cityledger.offchain.mobility.score import FEATURES, build_onnx, compute_score_fixed, explain
from mobility_fixtures import stored_claims

DAY = 12 * 3_600  # noon


def cruise(seconds: int, speed: int = 13_900, limit: int = 13_900, second_of_day: int = DAY) -> list[Sample]:
    return [Sample(speed, limit, 0, second_of_day + index) for index in range(seconds)]


def test_features_count_harsh_runs_once_and_integrate_distance():
    samples = cruise(100)
    samples[10] = Sample(13_900 - 3_100, 13_900, 0, DAY + 10)  # one harsh brake (3.1 m/s² over 1 s)
    samples[11] = Sample(13_900 - 6_200, 13_900, 0, DAY + 11)  # held: the same event
    samples[12] = Sample(13_900 - 6_200 + 2_900, 13_900, 0, DAY + 12)  # harsh acceleration, held into 13
    samples[50] = Sample(13_900, 13_900, -3_923, DAY + 50)  # 0.4 g to the left
    samples[60] = Sample(16_000, 13_900, 0, DAY + 60)  # above the limit (and a 2.1 m/s² change: not harsh)
    features = compute_features(samples)
    assert (features.harsh_brakes, features.harsh_accels, features.harsh_corners) == (1, 1, 1)
    assert (features.speeding_s, features.night_s, features.duration_s) == (1, 0, 100)
    assert features.distance_m == sum(sample.speed_mm_s for sample in samples) // 1_000
    assert features.model_inputs()[0] == 100_000 // features.distance_m  # per 100 km


def test_features_at_night_and_gentle_braking():
    samples = cruise(50, second_of_day=21 * 3_600 + 3_590) + [Sample(13_900 - 3_099, 13_900, 3_922, 23 * 3_600)]
    features = compute_features(samples)
    assert (features.harsh_brakes, features.harsh_corners, features.night_s) == (0, 0, 41)


@pytest.mark.parametrize("bad, field", [
    ([], "samples"),
    ([Sample(-1, 0, 0, 0)], "samples[0].speed_mm_s"),
    ([Sample(0, 0, 0, 86_400)], "samples[0].second_of_day"),
    ([Sample(0, 0, 10**6, 0)], "samples[0].lateral_mm_s2"),
    ([Sample(1.5, 0, 0, 0)], "samples[0].speed_mm_s"),
])
def test_invalid_samples_name_the_field(bad, field):
    with pytest.raises(ValueError, match=field.replace("[", r"\[").replace("]", r"\]")):
        compute_features(bad)


def test_out_of_range_features_never_raise_a_score():
    clean = compute_score_fixed([0, 0, 0, 0, 0, 10])[0]
    assert clean == 100 * 128
    for index in range(len(FEATURES) - 1):
        for value in (-10**6, -1):
            features = [0, 0, 0, 0, 0, 10]
            features[index] = value
            assert compute_score_fixed(features)[0] == clean  # a negative count is clipped to 0
    assert compute_score_fixed([10**6, 10**6, 10**6, 10**6, 10**6, 10**6]) == (0, 200 * 128)
    assert explain([3, 10, 0, 5, 0, 40])["score"] == 89.5


def test_shipped_graph_is_what_the_code_builds():
    with open(f"{circuit_dir()}/model.onnx", "rb") as handle:
        assert handle.read() == build_onnx()


def test_commitment_is_the_circuits_hashed_input():
    claim = stored_claims()["good"]
    assert is_field_element(claim.commitment)
    inputs = [0, 0, 0, 0, 0, 12, 1, 2, 3]
    assert compute_commitment(inputs) != compute_commitment(inputs[:-1] + [4])  # the salt changes the hash
    with pytest.raises(ValueError, match="features"):
        quantise([0, 0, 0, 0, 0, 12, 1, 2, 1 << 22])  # a salt above 22 bits would leave the range checks


def test_verifier_refuses_parameters_other_than_the_pinned_ones(tmp_path):
    for name in ("settings.json", "vk.key", "kzg.srs"):
        shutil.copyfile(f"{circuit_dir()}/{name}", tmp_path / name)
    ProofVerifier(directory=str(tmp_path))
    with open(tmp_path / "kzg.srs", "r+b") as handle:
        handle.seek(100)
        handle.write(b"\x00")
    with pytest.raises(RuntimeError, match="kzg.srs"):
        ProofVerifier(directory=str(tmp_path))
    assert set(PINNED_DIGESTS["driving-score-v1"]) == {"settings.json", "vk.key", "kzg.srs"}


def test_verdicts_are_cached_by_content(monkeypatch):
    verifier = ProofVerifier()
    claim = stored_claims()["good"]
    instances = compute_instances(claim.commitment, claim.score_fixed, claim.distance_fixed)
    calls = []
    real = verifier.verify_uncached
    monkeypatch.setattr(verifier, "verify_uncached", lambda *args: calls.append(args) or real(*args))
    assert verifier.verify("driving-score-v1", instances, claim.proof).verified
    assert verifier.verify("driving-score-v1", instances, claim.proof).verified
    assert len(calls) == 1
    wrong = compute_instances(claim.commitment, claim.score_fixed - 1, claim.distance_fixed)
    verdict = verifier.verify("driving-score-v1", wrong, claim.proof)
    assert not verdict.verified and "proof" in verdict.reason
    assert not verifier.verify("another-model", instances, claim.proof).verified
    assert len(calls) == 2
