"""Enrollment through the transport office's desk: an AnonCreds presentation of a valid vehicle
registration earns a ticket, the chain enrolls the pseudonym once per vehicle and period, and a
revoked registration or a presentation made for another account earns nothing."""

from __future__ import annotations

import pytest

from helpers import CHAIN_ID, assert_error_kind
from test_identity_fixtures import City
from cityledger.core.keys import PrivateKey
from cityledger.modules.devices import compute_device_did
from cityledger.modules.mobility import CreateProgramme, get_enrollment
from cityledger.modules.mobility import errors as E
from cityledger.modules.mobility.messages import MAX_PERIOD_BLOCKS
from cityledger.offchain.identity import VEHICLE_REGISTRATION
from cityledger.offchain.mobility.rewards import EnrollmentDesk, EnrollmentRefused

pytestmark = pytest.mark.slow  # a published registry, two credentials and a revocation: about 15 s


@pytest.fixture(scope="module")
def desk_city(tmp_path_factory):
    city = City(tmp_path_factory.mktemp("enrollment"))
    office = city.transport_office()
    sponsor = city.chain.accounts[0]
    programme = CreateProgramme("driving-score-v1", 1_000, 60, 100, 10, 400, 700, MAX_PERIOD_BLOCKS,
                                city.ledger.height() + 10_000, office.did)
    city.ledger.send([sponsor], [programme]).raise_for_error()
    desk = EnrollmentDesk(office.keys[0], b"\x71" * 32, CHAIN_ID, office.published[VEHICLE_REGISTRATION].cred_def_id)
    owner = PrivateKey(1, b"\x72" * 32)
    wallets = {}
    for name in ("car-a", "car-b"):
        wallets[name] = city.wallet()
        city.registration(wallets[name], compute_device_did(PrivateKey(2, name.encode().ljust(32, b"\x00")).public_key),
                          owner, f"REG-{name}")
    office.revoke(["REG-car-b"])
    return city, desk, wallets


def ticket_for(city, desk, wallet, account: PrivateKey, pseudonym: PrivateKey, presented_for: bytes | None = None):
    """Answer the desk's request (made for `presented_for`, default the account) and ask for a ticket."""
    height = city.ledger.height()
    request = desk.request(1, 0, pseudonym.public_key, presented_for or account.address(), height)
    presentation = wallet.present(request, city.ledger)
    return desk.issue(city.ledger.store, city.ledger.height(), 1, 0, pseudonym.public_key, account.address(), height,
                      presentation)


def test_valid_registration_enrolls_once_per_vehicle(desk_city):
    city, desk, wallets = desk_city
    first, second = PrivateKey(1, b"\x73" * 32), PrivateKey(1, b"\x74" * 32)
    ticket = ticket_for(city, desk, wallets["car-a"], first, first)
    city.ledger.send([first], [ticket]).raise_for_error()
    assert get_enrollment(city.ledger.store, 1, 0, first.address()).pseudonym_key == first.public_key
    # The same car with a fresh pseudonym and account: the office's tag is the same, the chain refuses.
    again = ticket_for(city, desk, wallets["car-a"], second, second)
    assert again.vehicle_tag == ticket.vehicle_tag
    assert_error_kind(city.ledger.send([second], [again]), E.ERR_VEHICLE_ENROLLED)


def test_invalid_revoked_registration_gets_no_ticket(desk_city):
    city, desk, wallets = desk_city
    account = PrivateKey(1, b"\x75" * 32)
    with pytest.raises(EnrollmentRefused, match="presentation"):
        ticket_for(city, desk, wallets["car-b"], account, account)


def test_invalid_presentation_made_for_another_account(desk_city):
    city, desk, wallets = desk_city
    account, other = PrivateKey(1, b"\x76" * 32), PrivateKey(1, b"\x77" * 32)
    with pytest.raises(EnrollmentRefused, match="presentation"):
        ticket_for(city, desk, wallets["car-a"], account, account, presented_for=other.address())
    with pytest.raises(EnrollmentRefused, match="height"):
        desk.issue(city.ledger.store, city.ledger.height(), 1, 0, account.public_key, account.address(), 10**9, "{}")
