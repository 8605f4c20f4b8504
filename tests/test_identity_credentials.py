"""AnonCreds end to end: issue a Resident ID, present facts, verify against the ledger; revocation,
unsatisfied predicates, untrusted issuers, replays, tampering, the encrypted wallet, unlinkability."""

from __future__ import annotations

import json
import re

import anoncreds
import pytest

from test_identity_fixtures import ALICE, MINOR, NEWCOMER, TODAY, City
from cityledger.modules.identity import DeactivateDid
from cityledger.offchain.identity import (
    RESIDENT_ID,
    IssuanceError,
    TailsFetcher,
    Verifier,
    Wallet,
    WalletError,
)


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    return City(tmp_path_factory.mktemp("city"))


@pytest.fixture(scope="module")
def alice(city):
    return city.resident(ALICE)


def test_issue_present_verify_reveals_only_what_was_asked(city, alice):
    verifier = Verifier(city.ledger)
    request = verifier.resident_request(TODAY, reveal=("district",))
    presentation = alice.present(request, city.ledger)
    verdict = verifier.verify(request, presentation)
    assert verdict == {"verified": True, "reason": "", "revealed": {"attr_district": "Nordstadt"},
                       "height": request["non_revoked"]["to"]}
    for hidden in (ALICE["name"], str(ALICE["birth_date"]), ALICE["id_number"], str(ALICE["resident_since"])):
        assert hidden not in presentation


def test_protocol_messages_are_json(city):
    office, wallet = city.id_office(), city.wallet()
    offer = office.offer(RESIDENT_ID)
    request = wallet.request_credential(json.loads(json.dumps(offer)), city.ledger)
    credential = office.issue(json.loads(json.dumps(request)), dict(ALICE, id_number="ID-JSON"), "ID-JSON")
    wallet.store_credential(json.loads(json.dumps(credential)), city.ledger)
    assert [c["type"] for c in wallet.credentials().values()] == [RESIDENT_ID]


def test_invalid_unsatisfied_predicates_cannot_be_proven(city):
    verifier = Verifier(city.ledger)
    for values in (MINOR, NEWCOMER):  # under 18; resident for less than a year
        wallet = city.resident(values)
        with pytest.raises(WalletError, match="cannot satisfy"):
            wallet.present(verifier.resident_request(TODAY), city.ledger)


def test_invalid_revoked_credential_fails_the_next_presentation(city):
    holder = city.resident(dict(ALICE, id_number="ID-REVOKE"))
    verifier = Verifier(city.ledger)
    before = verifier.resident_request(TODAY)
    assert verifier.verify(before, holder.present(before, city.ledger))["verified"]
    city.id_office().revoke(["ID-REVOKE"])
    after = verifier.resident_request(TODAY)
    verdict = verifier.verify(after, holder.present(after, city.ledger))
    assert not verdict["verified"] and "does not verify" in verdict["reason"]


def test_invalid_proof_against_an_older_status_list_is_refused(city):
    holder = city.resident(dict(ALICE, id_number="ID-STALE"))
    verifier = Verifier(city.ledger)
    old_height = city.ledger.height()
    city.id_office().revoke(["ID-STALE"])
    request = verifier.resident_request(TODAY)
    # The holder answers the new request with the revocation state of an earlier height.
    stale = holder.present(dict(request, non_revoked={"to": old_height}), city.ledger)
    verdict = verifier.verify(request, stale)
    assert not verdict["verified"] and "not the latest" in verdict["reason"]


def test_revocation_of_one_resident_leaves_others_valid(city, alice):
    other = city.resident(dict(NEWCOMER, resident_since=20100101, id_number="ID-OTHER"))
    city.id_office().revoke(["ID-OTHER"])
    verifier = Verifier(city.ledger)
    request = verifier.resident_request(TODAY)
    assert verifier.verify(request, alice.present(request, city.ledger))["verified"]
    request = verifier.resident_request(TODAY)
    assert not verifier.verify(request, other.present(request, city.ledger))["verified"]


def test_invalid_replayed_or_foreign_presentations_are_refused(city, alice):
    verifier = Verifier(city.ledger)
    request = verifier.resident_request(TODAY)
    presentation = alice.present(request, city.ledger)
    assert verifier.verify(request, presentation)["verified"]
    assert "nonce" in verifier.verify(request, presentation)["reason"]  # replay
    second = verifier.resident_request(TODAY)
    assert not verifier.verify(second, presentation)["verified"]  # answers another request


def test_invalid_tampered_presentation_is_refused(city, alice):
    verifier = Verifier(city.ledger)
    request = verifier.resident_request(TODAY)
    presentation = json.loads(alice.present(request, city.ledger))
    presentation["requested_proof"]["revealed_attrs"]["attr_district"]["raw"] = "Altstadt"
    assert not verifier.verify(request, json.dumps(presentation))["verified"]


def test_invalid_credential_of_a_withdrawn_or_deactivated_issuer_is_refused(tmp_path):
    city = City(tmp_path)
    holder = city.resident(ALICE)
    office = city.id_office()
    verifier = Verifier(city.ledger)
    assert city.withdraw(office.did, RESIDENT_ID) == "executed"
    request = verifier.resident_request(TODAY)
    verdict = verifier.verify(request, holder.present(request, city.ledger))
    assert not verdict["verified"] and "not an active issuer accredited" in verdict["reason"]
    assert city.accredit(office.did, RESIDENT_ID) == "executed"
    request = verifier.resident_request(TODAY)
    assert verifier.verify(request, holder.present(request, city.ledger))["verified"]
    city.ledger.send(office.keys, [DeactivateDid(office.did)]).raise_for_error()
    request = verifier.resident_request(TODAY)
    assert not verifier.verify(request, holder.present(request, city.ledger))["verified"]


def test_invalid_issuance_requests_are_refused(city):
    office, wallet = city.id_office(), city.wallet()
    offer = office.offer(RESIDENT_ID)
    request = wallet.request_credential(offer, city.ledger)
    with pytest.raises(IssuanceError, match="values"):
        office.issue(request, {"name": "x"}, "ID-BAD")
    office.issue(request, dict(ALICE, id_number="ID-ONCE"), "ID-ONCE")
    with pytest.raises(IssuanceError, match="no pending offer"):
        office.issue(request, dict(ALICE, id_number="ID-ONCE"), "ID-TWICE")


def test_invalid_tails_file_is_refused(city, alice):
    wallet = Wallet.in_memory(TailsFetcher(city.tmp_path / "evil-cache", transport=lambda url: b"not the tails"))
    city.issue(city.id_office(), wallet, RESIDENT_ID, dict(ALICE, id_number="ID-TAILS"), "ID-TAILS")
    with pytest.raises(ValueError, match="does not match the anchored hash"):
        wallet.present(Verifier(city.ledger).resident_request(TODAY), city.ledger)


def test_presentations_share_no_values_beyond_public_ones(city, alice):
    verifier = Verifier(city.ledger)
    first = alice.present(verifier.resident_request(TODAY), city.ledger)
    second = alice.present(verifier.resident_request(TODAY), city.ledger)
    numbers = lambda text: set(re.findall(r"[0-9A-F ]{40,}|[0-9]{20,}", text))  # noqa: E731
    shared = numbers(first) & numbers(second)
    public = json.dumps(city.ledger.query("/identity/status_list",
                                          id=city.id_office().published[RESIDENT_ID].rev_reg_id))
    public += json.dumps(anoncreds.encode_credential_attributes({"district": ALICE["district"]}))  # revealed
    assert all(value.strip() in public for value in shared), shared


def test_pseudonymous_accounts_are_per_purpose_and_per_wallet(city):
    one, two = city.wallet(), city.wallet()
    assert one.account("vehicle").address() == one.account("vehicle").address()
    addresses = {one.account("vehicle").address(), one.account("payments").address(),
                 one.account("vehicle", 1).address(), two.account("vehicle").address()}
    assert len(addresses) == 4


def test_wallet_file_is_encrypted_and_reopens(city, tmp_path):
    path = tmp_path / "alice.wallet"
    fetcher = TailsFetcher(tmp_path / "cache", transport=city.fetch_tails)
    wallet = Wallet.create(path, "correct horse", fetcher)
    city.issue(city.id_office(), wallet, RESIDENT_ID, dict(ALICE, id_number="ID-FILE"), "ID-FILE")
    blob = path.read_bytes()
    for secret in (ALICE["name"], "Nordstadt", "ID-FILE", "link_secret"):
        assert secret.encode() not in blob
    with pytest.raises(WalletError, match="passphrase"):
        Wallet.open(path, "wrong", fetcher)
    reopened = Wallet.open(path, "correct horse", fetcher)
    assert reopened.account("vehicle").address() == wallet.account("vehicle").address()
    verifier = Verifier(city.ledger)
    request = verifier.resident_request(TODAY)
    assert verifier.verify(request, reopened.present(request, city.ledger))["verified"]


def test_verifier_refuses_requests_older_than_its_limit(city, alice):
    verifier = Verifier(city.ledger, max_age_blocks=0)
    request = verifier.resident_request(TODAY)
    presentation = alice.present(request, city.ledger)
    city.ledger.commit_block([])
    assert "older than" in verifier.verify(request, presentation)["reason"]


def test_issuer_state_survives_a_restart_and_can_still_revoke(city, tmp_path):
    from cityledger.offchain.identity import IssuerService
    from cityledger.offchain.identity.sealed import SealError

    office = city.id_office()
    holder = city.resident(dict(ALICE, id_number="ID-RESTART"))
    office.save(tmp_path / "office.sealed", "office secret")
    assert b"ID-RESTART" not in (tmp_path / "office.sealed").read_bytes()
    with pytest.raises(SealError):
        IssuerService.load(tmp_path / "office.sealed", "wrong", city.ledger, office.keys, office.tails)
    restored = IssuerService.load(tmp_path / "office.sealed", "office secret", city.ledger, office.keys, office.tails)
    city.offices["id"] = restored  # from now on the restored service is the office
    later = city.resident(dict(ALICE, id_number="ID-AFTER-RESTART"))  # issues from the restored state
    restored.revoke(["ID-RESTART"])
    verifier = Verifier(city.ledger)
    request = verifier.resident_request(TODAY)
    assert not verifier.verify(request, holder.present(request, city.ledger))["verified"]
    request = verifier.resident_request(TODAY)
    assert verifier.verify(request, later.present(request, city.ledger))["verified"]


def test_pre_authorised_offer_is_redeemed_once_with_its_values(city, tmp_path):
    office, wallet = city.id_office(), city.wallet()
    with pytest.raises(IssuanceError, match="reference"):
        office.offer(RESIDENT_ID, dict(ALICE, id_number="ID-PRE"), "")
    offer = office.offer(RESIDENT_ID, dict(ALICE, id_number="ID-PRE"), "ID-PRE")
    assert office.is_authorized(offer["thread"])
    with pytest.raises(IssuanceError, match="reference"):  # one pending offer per reference
        office.offer(RESIDENT_ID, dict(ALICE, id_number="ID-PRE"), "ID-PRE")
    # The pre-authorised values survive a restart of the office.
    office.save(tmp_path / "office.sealed", "pw")
    from cityledger.offchain.identity import IssuerService

    restored = IssuerService.load(tmp_path / "office.sealed", "pw", city.ledger, office.keys, office.tails)
    request = wallet.request_credential(offer, city.ledger)
    with pytest.raises(IssuanceError, match="cannot change"):
        restored.issue(request, dict(ALICE, id_number="ID-OTHER"), "ID-OTHER")
    wallet.store_credential(restored.issue(request), city.ledger)
    assert [c["attributes"]["id_number"] for c in wallet.credentials().values()] == ["ID-PRE"]
    with pytest.raises(IssuanceError, match="no pending offer"):
        restored.issue(request)
    plain = office.offer(RESIDENT_ID)
    with pytest.raises(IssuanceError, match="not pre-authorised"):
        office.issue(city.wallet().request_credential(plain, city.ledger))


def test_concurrent_issuance_gives_every_credential_its_own_registry_index(city):
    from concurrent.futures import ThreadPoolExecutor

    office = city.id_office()
    wallets = [city.wallet() for _ in range(12)]

    def issue(index: int) -> int:
        values = dict(ALICE, id_number=f"ID-THREAD-{index}")
        local_id = city.issue(office, wallets[index], RESIDENT_ID, values, values["id_number"])
        return wallets[index]._data["credentials"][local_id]["credential"]["signature"]["r_credential"]["i"]

    with ThreadPoolExecutor(4) as pool:
        indexes = list(pool.map(issue, range(len(wallets))))
    assert len(set(indexes)) == len(wallets), indexes
