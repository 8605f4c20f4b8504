"""mobility through the real app: programmes escrow a sponsor's budget, a transport office's ticket
enrolls a pseudonym per vehicle and period, and a trip is paid only for the vehicle's signed
commitment with an ezkl proof of its score; every fraud of issue 16 is refused and pays nothing."""

from __future__ import annotations

import msgspec
import pytest

from helpers import CHAIN_ID, assert_error_kind
from mobility_fixtures import FAIR, GOOD, OTHER_PSEUDONYM, POOR, PSEUDONYM, RewardCity, prove_trips
from cityledger.modules.bank import get_balance
from cityledger.modules.mobility import (
    MOBILITY_ACCOUNT,
    FundProgramme,
    WithdrawProgramme,
    get_programme,
    sign_commitment,
)
from cityledger.modules.mobility import errors as E
from cityledger.offchain.mobility.circuit import build_circuit, Prover
from cityledger.offchain.mobility.rewards import build_claim, close_trip
from cityledger.offchain.mobility.score import FEATURES, compute_score_fixed


@pytest.fixture(scope="module")
def trips(tmp_path_factory):
    return prove_trips(tmp_path_factory.mktemp("prover"))


@pytest.fixture
def rewards(tmp_path):
    return RewardCity(tmp_path)


def balance(rewards, key) -> int:
    return get_balance(rewards.ledger.store, key.address())


def test_proven_scores_equal_the_integer_formula(trips):
    for name, features in (("good", GOOD), ("fair", FAIR), ("poor", POOR)):
        claim = trips.claims[name]
        assert (claim.score_fixed, claim.distance_fixed) == compute_score_fixed(features), name
    assert trips.claims["fair"].score_fixed == 11_456  # 89.5 points * 128


def test_claim_pays_the_enrollee_within_the_trip_cap(rewards, trips):
    rewards.enroll(rewards.driver).raise_for_error()
    before = balance(rewards, rewards.driver)
    outcome = rewards.ledger.send([rewards.driver], [trips.claims["fair"]]).raise_for_error()
    reward = min(100 + 10 * 40, 500)
    assert balance(rewards, rewards.driver) == before + reward
    programme = get_programme(rewards.ledger.store, 1)
    assert (programme.remaining, programme.claims) == (10_000 - reward, 1)
    attributes = dict(outcome.events[-1].attributes)
    assert (attributes["score"], attributes["distance_km"], attributes["reward"]) == ("89", "40", str(reward))
    rewards.ledger.app.check_invariants()


def test_invalid_replayed_claim_and_same_trip_twice(rewards, trips):
    rewards.enroll(rewards.driver).raise_for_error()
    rewards.ledger.send([rewards.driver], [trips.claims["good"]]).raise_for_error()
    paid = balance(rewards, rewards.driver)
    assert_error_kind(rewards.ledger.send([rewards.driver], [trips.claims["good"]]), E.ERR_ALREADY_CLAIMED)
    # The same trip id again, with another commitment the pseudonym signed (a re-scored trip).
    again = close_trip(PSEUDONYM, CHAIN_ID, 1, FAIR, trips.signed["good"].trip_id)
    claim = msgspec.structs.replace(trips.claims["fair"], trip_id=again.trip_id, commitment=again.commitment,
                                    commitment_signature=again.signature)
    outcome = rewards.ledger.send([rewards.driver], [claim])
    assert_error_kind(outcome, E.ERR_ALREADY_CLAIMED)
    assert "trip_id" in outcome.log
    assert balance(rewards, rewards.driver) == paid


def test_invalid_score_above_the_proven_one(rewards, trips):
    rewards.enroll(rewards.driver).raise_for_error()
    for score in (trips.claims["fair"].score_fixed + 1, 100 * 128):
        claim = msgspec.structs.replace(trips.claims["fair"], score_fixed=score)
        outcome = rewards.ledger.send([rewards.driver], [claim])
        assert_error_kind(outcome, E.ERR_PROOF_REJECTED)
        assert "proof" in outcome.log
    longer = msgspec.structs.replace(trips.claims["fair"], distance_fixed=trips.claims["fair"].distance_fixed + 128)
    assert_error_kind(rewards.ledger.send([rewards.driver], [longer]), E.ERR_PROOF_REJECTED)
    assert get_programme(rewards.ledger.store, 1).claims == 0


def test_invalid_proof_of_another_commitment_or_garbage(rewards, trips):
    rewards.enroll(rewards.driver).raise_for_error()
    # The vehicle signed the good trip's commitment; the proof is the fair trip's (another hash).
    swapped = msgspec.structs.replace(trips.claims["good"], proof=trips.claims["fair"].proof)
    assert_error_kind(rewards.ledger.send([rewards.driver], [swapped]), E.ERR_PROOF_REJECTED)
    proof = bytearray(trips.claims["good"].proof)
    proof[100] ^= 1
    for bad in (bytes(proof), b"\x00" * 3_840, b"\x01", b"\xff" * 16_384):
        claim = msgspec.structs.replace(trips.claims["good"], proof=bad)
        assert_error_kind(rewards.ledger.send([rewards.driver], [claim]), E.ERR_PROOF_REJECTED)
    assert get_programme(rewards.ledger.store, 1).claims == 0


def test_invalid_commitment_signed_by_another_pseudonym(rewards, trips):
    rewards.enroll(rewards.driver).raise_for_error()
    claim = trips.claims["good"]
    forged = sign_commitment(OTHER_PSEUDONYM, CHAIN_ID, 1, claim.trip_id, claim.commitment)
    outcome = rewards.ledger.send([rewards.driver], [msgspec.structs.replace(claim, commitment_signature=forged)])
    assert_error_kind(outcome, E.ERR_BAD_COMMITMENT_SIGNATURE)
    # The right pseudonym's claim from an account that did not enroll it.
    assert_error_kind(rewards.ledger.send([rewards.stranger], [claim]), E.ERR_NOT_ENROLLED)


def test_invalid_score_below_threshold(rewards, trips):
    rewards.enroll(rewards.driver).raise_for_error()
    assert_error_kind(rewards.ledger.send([rewards.driver], [trips.claims["poor"]]), E.ERR_BELOW_THRESHOLD)


def test_invalid_claims_after_the_cap_or_budget_ran_out(tmp_path, trips):
    rewards = RewardCity(tmp_path / "cap", cap_per_enrollee=150)
    rewards.enroll(rewards.driver).raise_for_error()
    rewards.ledger.send([rewards.driver], [trips.claims["good"]]).raise_for_error()  # 100 + 120 -> capped at 150
    assert get_programme(rewards.ledger.store, 1).remaining == 10_000 - 150
    assert_error_kind(rewards.ledger.send([rewards.driver], [trips.claims["fair"]]), E.ERR_CAP_REACHED)
    poor = RewardCity(tmp_path / "budget", budget=300, cap_per_trip=220)
    poor.enroll(poor.driver).raise_for_error()
    poor.ledger.send([poor.driver], [trips.claims["good"]]).raise_for_error()  # 220
    poor.ledger.send([poor.driver], [trips.claims["fair"]]).raise_for_error()  # the last 80
    assert get_programme(poor.ledger.store, 1).remaining == 0
    assert get_balance(poor.ledger.store, MOBILITY_ACCOUNT) == 0
    third = close_trip(PSEUDONYM, CHAIN_ID, 1, GOOD, b"third".ljust(32, b"\x00"))
    claim = build_claim(trips.prover, third)
    assert_error_kind(poor.ledger.send([poor.driver], [claim]), E.ERR_BUDGET_EXHAUSTED)
    poor.ledger.app.check_invariants()


def test_invalid_second_enrollment_of_one_vehicle(rewards):
    rewards.enroll(rewards.driver).raise_for_error()
    outcome = rewards.enroll(rewards.stranger, OTHER_PSEUDONYM)
    assert_error_kind(outcome, E.ERR_VEHICLE_ENROLLED)
    assert_error_kind(rewards.enroll(rewards.driver, OTHER_PSEUDONYM, "did:city:another-car"),
                      E.ERR_ACCOUNT_ENROLLED)
    rewards.enroll(rewards.stranger, OTHER_PSEUDONYM, "did:city:another-car").raise_for_error()


def test_invalid_enrollment_tickets(rewards):
    from cityledger.offchain.mobility.rewards import issue_enrollment
    from mobility_fixtures import OFFICE_SECRET, VEHICLE

    from cityledger.core.keys import PrivateKey

    forger = PrivateKey(1, b"\x54" * 32)
    forged = issue_enrollment(forger, OFFICE_SECRET, CHAIN_ID, 1, rewards.period(), VEHICLE, PSEUDONYM.public_key,
                              rewards.driver.address())
    assert_error_kind(rewards.ledger.send([rewards.driver], [forged]), E.ERR_BAD_TICKET)
    good = issue_enrollment(rewards.office.keys[0], OFFICE_SECRET, CHAIN_ID, 1, rewards.period(), VEHICLE,
                            PSEUDONYM.public_key, rewards.driver.address())
    # Seen in the mempool, the ticket cannot be sent from another account.
    assert_error_kind(rewards.ledger.send([rewards.stranger], [good]), E.ERR_BAD_TICKET)
    other_key = msgspec.structs.replace(good, pseudonym_key=OTHER_PSEUDONYM.public_key)
    assert_error_kind(rewards.ledger.send([rewards.driver], [other_key]), E.ERR_BAD_TICKET)
    assert_error_kind(rewards.ledger.send([rewards.driver], [msgspec.structs.replace(good, period=good.period + 1)]),
                      E.ERR_WRONG_PERIOD)
    assert rewards.city.withdraw(rewards.office.did, "vehicle-registration") == "executed"
    assert_error_kind(rewards.ledger.send([rewards.driver], [good]), E.ERR_BAD_TICKET)


def test_sponsor_funds_and_withdraws_after_expiry(tmp_path):
    rewards = RewardCity(tmp_path, expiry_in=4)
    expiry = get_programme(rewards.ledger.store, 1).expiry_height
    start = balance(rewards, rewards.sponsor)
    assert_error_kind(rewards.ledger.send([rewards.driver], [FundProgramme(1, 5)]), E.ERR_NOT_SPONSOR)
    rewards.ledger.send([rewards.sponsor], [FundProgramme(1, 500)]).raise_for_error()
    assert get_programme(rewards.ledger.store, 1).remaining == 10_500
    assert_error_kind(rewards.ledger.send([rewards.sponsor], [WithdrawProgramme(1)]), E.ERR_NOT_EXPIRED)
    while rewards.ledger.height() <= expiry:
        rewards.ledger.send([rewards.stranger], [FundProgramme(1, 1)])
    rewards.ledger.send([rewards.sponsor], [WithdrawProgramme(1)]).raise_for_error()
    assert balance(rewards, rewards.sponsor) == start + 10_000  # the budget and the top-up, nothing paid out
    assert get_programme(rewards.ledger.store, 1).withdrawn
    assert_error_kind(rewards.ledger.send([rewards.sponsor], [WithdrawProgramme(1)]), E.ERR_WITHDRAWN)
    rewards.ledger.app.check_invariants()


@pytest.mark.slow
def test_invalid_proof_of_another_model(tmp_path, trips):
    """A circuit with other weights, set up on the same SRS: its proof fails under the pinned vk."""
    import shutil

    from cityledger.modules.mobility import circuit_dir

    other = tmp_path / "other"
    other.mkdir()
    shutil.copyfile(f"{circuit_dir()}/kzg.srs", other / "kzg.srs")
    build_circuit(str(other), str(other / "kzg.srs"), penalties=[0] * len(FEATURES))  # everyone scores 100
    lenient = Prover(str(other), str(tmp_path / "lenient"))
    features = POOR
    trip = close_trip(PSEUDONYM, CHAIN_ID, 1, features, b"lenient".ljust(32, b"\x00"))
    claim = build_claim(lenient, trip)
    assert claim.score_fixed == 100 * 128
    rewards = RewardCity(tmp_path / "city")
    rewards.enroll(rewards.driver).raise_for_error()
    assert_error_kind(rewards.ledger.send([rewards.driver], [claim]), E.ERR_PROOF_REJECTED)


def test_check_tx_verifies_once_for_finalize_block(rewards, monkeypatch):
    """LocalLedger runs check_tx then FinalizeBlock: the proof is verified once, the verdict reused."""
    from mobility_fixtures import stored_claims
    from cityledger.node.modules import proof_verifier

    verifier = proof_verifier()
    calls = []
    real = verifier.verify_uncached
    monkeypatch.setattr(verifier, "verify_uncached", lambda *args: calls.append(1) or real(*args))
    rewards.enroll(rewards.driver).raise_for_error()
    claim = stored_claims()["fair"]
    fresh = msgspec.structs.replace(claim, proof=claim.proof)  # same content: a cached verdict may exist
    verifier._cache.clear()
    rewards.ledger.send([rewards.driver], [fresh]).raise_for_error()
    assert len(calls) == 1
