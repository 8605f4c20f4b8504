"""Registries sized for the city: random indexes, the next registry ahead of need, unlinkable presentations.

Two registries' worth of residents at a test size of 8 (7 credentials each: AnonCreds index 0 is
unusable); the city's size (131,072) is measured by bench/registry_sizes.py, not here.
"""

from __future__ import annotations

import dataclasses
import json

import anoncreds
import pytest

from test_identity_fixtures import ALICE, TODAY, City
from cityledger.offchain.identity import (
    RESIDENT_ID,
    RESIDENT_ID_TYPE,
    IssuanceError,
    IssuerService,
    TailsFetcher,
    Verifier,
    compute_tails_hash,
)
from cityledger.offchain.identity.registries import Registry

SIZE = 8
PER_REGISTRY = SIZE - 1


def issue(city: City, office: IssuerService, wallet, number: int) -> int:
    """One resident's exchange; the registry index its credential got."""
    values = dict(ALICE, id_number=f"CID-{number:04d}")
    request = wallet.request_credential(office.offer(RESIDENT_ID), city.ledger)
    message = office.issue(request, values, values["id_number"])
    wallet.store_credential(message, city.ledger)
    office.wait_prepared()  # a registry being prepared in the background is anchored before the next call
    return anoncreds.Credential.load(json.dumps(message["credential"])).rev_reg_index


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    city = City(tmp_path_factory.mktemp("registries"))
    office = city.office("id", 0x41, dataclasses.replace(RESIDENT_ID_TYPE, max_cred_num=SIZE))
    city.wallets, city.indexes = [], []
    for number in range(2 * PER_REGISTRY):
        wallet = city.wallet()
        city.indexes.append((office.published[RESIDENT_ID].current.rev_reg_id, issue(city, office, wallet, number)))
        city.wallets.append(wallet)
        if number == PER_REGISTRY - 2:  # 6 of 7 taken: past the threshold, the next one was made meanwhile
            city.prepared_early = len(office.published[RESIDENT_ID].registries) == 2
    return city


def _leaves(value, path=()) -> dict[tuple, object]:
    """Every scalar of a JSON value by its path (a list of integers, a big number's bytes, is one scalar)."""
    if isinstance(value, list) and all(type(item) is int for item in value):
        return {path: tuple(value)}
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _leaves(item, path + (key,)).items()}
    if isinstance(value, list):
        return {k: v for i, item in enumerate(value) for k, v in _leaves(item, path + (i,)).items()}
    return {path: value}


def _equal(a: str, b: str) -> set[tuple]:
    """The paths where two presentations hold the same value."""
    left, right = _leaves(json.loads(a)), _leaves(json.loads(b))
    assert left.keys() == right.keys()  # one shape: only values can tell holders apart
    return {path for path in left if left[path] == right[path]}


def _present(city: City, verifier: Verifier, wallet) -> tuple[dict, str]:
    request = verifier.request("bar", RESIDENT_ID, reveal=["district"],
                               predicates=[("birth_date", "<=", TODAY - 180000)])
    return request, wallet.present(request, city.ledger)


def test_the_next_registry_is_prepared_before_the_current_one_fills(city):
    published = city.offices["id"].published[RESIDENT_ID]
    assert city.prepared_early
    # The second filled too, so a third waits, empty.
    assert [r.issued for r in published.registries] == [PER_REGISTRY, PER_REGISTRY, 0]
    assert len({rev_reg_id for rev_reg_id, _ in city.indexes}) == 2


def test_indexes_are_distinct_in_range_and_every_one_is_used_once(city):
    by_registry: dict[str, list[int]] = {}
    for rev_reg_id, index in city.indexes:
        by_registry.setdefault(rev_reg_id, []).append(index)
    assert [sorted(indexes) for indexes in by_registry.values()] == [list(range(1, SIZE))] * 2


def test_indexes_are_drawn_at_random_not_in_issuance_order():
    registry = Registry("r", "1", None, None, None, 1024, bytearray(128))
    drawn = [registry.take_index() for _ in range(1023)]
    assert sorted(drawn) == list(range(1, 1024))  # each index once, 0 never
    assert drawn != sorted(drawn)  # in order with probability 1/1023!: cannot happen
    assert not registry.free and registry.issued == 1023


def test_a_full_city_answers_instead_of_creating_a_registry_inline(tmp_path):
    city = City(tmp_path)
    office = city.office("id", 0x41, dataclasses.replace(RESIDENT_ID_TYPE, max_cred_num=4))
    office.background = False  # the operator prepares registries itself: a full registry must refuse
    for number in range(3):
        issue(city, office, city.wallet(), number)
    with pytest.raises(IssuanceError, match="full"):
        issue(city, office, city.wallet(), 3)
    assert office.needs_registry(RESIDENT_ID)
    office.prepare_registry(RESIDENT_ID)
    assert not office.needs_registry(RESIDENT_ID)
    assert issue(city, office, city.wallet(), 4) in (1, 2, 3)


def test_a_verifier_sees_nothing_that_separates_holders_beyond_the_registry(city):
    first, second = city.indexes[0][0], city.indexes[-1][0]
    alice, bob, carol = city.wallets[0], city.wallets[1], city.wallets[-1]
    verifier = Verifier(city.ledger)
    presentations = {}
    for name, wallet in (("alice1", alice), ("alice2", alice), ("bob", bob), ("carol", carol)):
        request, presentation = _present(city, verifier, wallet)
        verdict = verifier.verify(request, presentation)
        assert verdict["verified"], verdict
        presentations[name] = presentation
    same_holder = _equal(presentations["alice1"], presentations["alice2"])
    same_registry = _equal(presentations["alice1"], presentations["bob"])
    other_registry = _equal(presentations["alice1"], presentations["carol"])
    # Whatever two presentations of one holder share, two holders of one registry share too.
    assert same_holder == same_registry
    # Across registries only the registry's own public values differ.
    assert {path[-1] for path in same_holder - other_registry} <= {"rev_reg_id", "timestamp"}
    assert (("identifiers", 0, "rev_reg_id")) in same_holder - other_registry and first != second
    # And what is shared is public: ids, the revealed district, the proof's layout.
    shared = _leaves(json.loads(presentations["alice1"]))
    assert {shared[p] for p in same_holder if p[-1] == "raw"} == {ALICE["district"]}


def test_revocation_works_in_both_registries(city):
    office = city.offices["id"]
    revoked = [city.wallets[2], city.wallets[PER_REGISTRY + 2]]
    kept = [city.wallets[3], city.wallets[PER_REGISTRY + 3]]
    verifier = Verifier(city.ledger)
    for wallet in revoked + kept:  # each wallet now holds a witness, which the revocation below moves
        assert verifier.verify(*_present(city, verifier, wallet))["verified"]
    office.revoke(["CID-0002", f"CID-{PER_REGISTRY + 2:04d}"])
    for wallet in revoked:
        verdict = verifier.verify(*_present(city, verifier, wallet))
        assert not verdict["verified"]
    for wallet in kept:  # the witness updated from the delta still proves non-revocation
        assert verifier.verify(*_present(city, verifier, wallet))["verified"]


def test_a_holder_fetches_a_tails_file_once_by_hash_from_any_source_that_has_it(city, tmp_path):
    rev_reg_id = city.indexes[0][0]
    registry = city.offices["id"].published[RESIDENT_ID].registry(rev_reg_id)
    location = registry.rev_reg_def.to_dict()["value"]["tailsLocation"]
    tails_hash = location.rsplit("/", 1)[1]
    asked = []

    def transport(url: str) -> bytes:
        asked.append(url)
        if url == location:
            return b"a tampered copy at the anchored URL"
        if url.startswith("https://node-b.example"):
            raise LookupError("404")
        return city.fetch_tails(location)  # node C has the right bytes

    fetcher = TailsFetcher(tmp_path / "cache", transport,
                           mirrors=["https://node-b.example", "https://node-c.example/"])
    path = fetcher.get(location, tails_hash)
    assert compute_tails_hash(open(path, "rb").read()) == tails_hash
    assert asked == [location, "https://node-b.example/tails/" + tails_hash,
                     "https://node-c.example/tails/" + tails_hash]
    assert fetcher.get(location, tails_hash) == path and len(asked) == 3  # cached by hash: never fetched again
    bad = TailsFetcher(tmp_path / "bad", lambda url: b"wrong bytes", mirrors=["https://node-b.example"])
    with pytest.raises(ValueError, match="no source served the file with the anchored hash"):
        bad.get(location, tails_hash)
    assert not any((tmp_path / "bad").iterdir())  # nothing unverified is kept


def test_the_sealed_state_keeps_every_registry_and_the_indexes_given_out(city, tmp_path):
    office = city.offices["id"]
    office.save(tmp_path / "office.sealed", "pw")
    loaded = IssuerService.load(tmp_path / "office.sealed", "pw", city.ledger, office.keys, office.tails)
    before, after = office.published[RESIDENT_ID], loaded.published[RESIDENT_ID]
    assert [(r.rev_reg_id, r.used, sorted(r.free)) for r in after.registries] == \
        [(r.rev_reg_id, r.used, sorted(r.free)) for r in before.registries]
    assert after.current.rev_reg_id == before.current.rev_reg_id
