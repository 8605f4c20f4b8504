"""The verifier's stateless requests: sealed with an HMAC under the verifier's key, expiring by
height and by time, each verifying once; no store of pending requests to fill or evict."""

from __future__ import annotations

import os
import stat

import pytest

from test_identity_fixtures import ALICE, TODAY, City
from cityledger.offchain.identity import Verifier
from cityledger.offchain.identity import verifier as verifier_module
from cityledger.offchain.identity.verifier import REQUEST_TTL_S, VerifierKeyError, load_verifier_key

KEY = b"\x07" * 32


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    return City(tmp_path_factory.mktemp("verifier-city"))


@pytest.fixture(scope="module")
def alice(city):
    return city.resident(dict(ALICE, id_number="ID-VERIFIER"))


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self, now_s: float = 1_700_000_000) -> None:
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s


def test_a_request_needs_no_memory_of_it_to_verify(city, alice):
    maker = Verifier(city.ledger, key=KEY)
    request = maker.resident_request(TODAY)
    assert set(request["verifier"]) == {"height", "expires_height", "expires_unix_s", "mac"}
    for _ in range(2_000):  # what used to fill the store of pending requests makes nothing here
        maker.resident_request(TODAY)
    other_process = Verifier(city.ledger, key=KEY)  # same key, none of the maker's memory (a restart)
    verdict = other_process.verify(request, alice.present(request, city.ledger))
    assert verdict["verified"] and verdict["height"] == request["verifier"]["height"]


def test_invalid_altered_or_foreign_requests_are_refused(city, alice):
    verifier = Verifier(city.ledger, key=KEY)
    request = verifier.resident_request(TODAY)
    # The holder lowers the age threshold and answers its own version: the seal no longer matches.
    lowered = dict(request, requested_predicates={
        name: dict(spec, p_value=spec["p_value"] + 50_000) for name, spec in request["requested_predicates"].items()})
    verdict = verifier.verify(lowered, alice.present(lowered, city.ledger))
    assert not verdict["verified"] and verdict["reason"].startswith("verifier: the seal does not match")
    moved = dict(request, verifier=dict(request["verifier"], expires_height=10**12))
    assert verifier.verify(moved, "{}")["reason"].startswith("verifier: the seal does not match")
    foreign = Verifier(city.ledger, key=b"\x08" * 32).resident_request(TODAY)
    assert verifier.verify(foreign, "{}")["reason"].startswith("verifier: the seal does not match")
    for seal in (None, [], {"mac": "ab"}, dict(request["verifier"], height="1"), dict(request["verifier"], mac=1)):
        verdict = verifier.verify(dict(request, verifier=seal), "{}")
        assert not verdict["verified"] and verdict["reason"].startswith("verifier:"), seal


def test_invalid_expired_requests_are_refused_by_time_and_by_height(city, alice):
    clock = Clock()
    verifier = Verifier(city.ledger, key=KEY, clock=clock)
    request = verifier.resident_request(TODAY)
    presentation = alice.present(request, city.ledger)
    clock.now_s += REQUEST_TTL_S + 1
    verdict = verifier.verify(request, presentation)
    assert not verdict["verified"] and verdict["reason"].startswith("request: expired at unix time")
    young = Verifier(city.ledger, max_age_blocks=0, key=KEY, clock=clock)
    request = young.resident_request(TODAY)
    presentation = alice.present(request, city.ledger)
    city.ledger.commit_block([])
    assert young.verify(request, presentation)["reason"].startswith("request: expired at height")


def test_a_request_verifies_once_and_a_failed_attempt_does_not_use_it_up(city, alice):
    verifier = Verifier(city.ledger, key=KEY)
    request = verifier.resident_request(TODAY)
    assert not verifier.verify(request, "{}")["verified"]
    presentation = alice.present(request, city.ledger)
    assert verifier.verify(request, presentation)["verified"]
    assert verifier.verify(request, presentation)["reason"].startswith("nonce: this request was already verified")


def test_the_memory_of_verified_requests_is_bounded_and_expires(city, alice, monkeypatch):
    monkeypatch.setattr(verifier_module, "MAX_USED_REQUESTS", 1)
    clock = Clock()
    verifier = Verifier(city.ledger, key=KEY, clock=clock)
    first = verifier.resident_request(TODAY)
    clock.now_s += 100
    second = verifier.resident_request(TODAY)
    assert verifier.verify(first, alice.present(first, city.ledger))["verified"]
    presentation = alice.present(second, city.ledger)
    assert "ask again later" in verifier.verify(second, presentation)["reason"]
    clock.now_s += REQUEST_TTL_S - 50  # the first has expired (and is forgotten), the second has not
    assert verifier.verify(second, presentation)["verified"]


def test_the_key_file_is_made_once_with_mode_0600(tmp_path):
    path = tmp_path / "verifier.key"
    key = load_verifier_key(path)
    assert len(key) == 32 and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_verifier_key(path) == key
    path.write_text("not a key\n")
    with pytest.raises(VerifierKeyError):
        load_verifier_key(path)
