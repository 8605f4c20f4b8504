"""GET /passports/{id}/log's owner path: the account bound to the battery's device reads the log with its
key's signature; another account, another key or an unbound battery is refused, naming the field.

The route's check (PassportApi.authorise_log_read) runs on a real chain with a real bound device; the
node around it is a stand-in holding that chain's store (the HTTP route is tested in test_api_passports).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from test_batteries import Batteries
from test_identity_fixtures import TODAY, City
from cityledger.api.errors import ApiError
from cityledger.api.routes.batteries import MAX_LOG_READ_AGE, PassportApi
from cityledger.core.keys import PrivateKey
from cityledger.core.types import address_to_str
from cityledger.modules.devices import BindDevice
from cityledger.offchain.identity.devices import prove_ownership
from cityledger.offchain.identity.types import CredentialType
from cityledger.offchain.passport import PassportStore, new_master_key
from cityledger.sdk.passports import sign_log_read


@pytest.fixture(scope="module")
def owned(tmp_path_factory):
    """(the PassportApi, the passport id, the owner's key, a passport whose battery has no owner)."""
    tmp = tmp_path_factory.mktemp("passport-log-owner")
    world = Batteries(City(tmp))
    pid, battery = world.register(0x21)
    owner = PrivateKey(1, b"\x45" * 32)
    wallet = world.city.wallet()
    office = world.city.office("devreg", 0x43, CredentialType("device-registration", "1.0",
                                                                ("device_did", "owner_account", "registered_on")))
    values = {"device_did": battery, "owner_account": address_to_str(owner.address()), "registered_on": TODAY}
    world.city.issue(office, wallet, "device-registration", values, "REG-BATTERY-1")
    proof = prove_ownership(wallet, world.ledger, world.city.chain_id, battery, owner)
    world.ledger.send([owner], [BindDevice(battery, proof)]).raise_for_error()
    unowned, _ = world.register(0x22)
    node = SimpleNamespace(store=world.city.chain.store, app=SimpleNamespace(chain_id=world.city.chain_id),
                           passports=PassportStore(tmp / "passports", new_master_key()))
    return PassportApi(node, verifier=None), pid, owner, unowned


def refused(api, passport_id, reader, height, signature) -> str:
    with pytest.raises(ApiError) as error:
        api.authorise_log_read(passport_id, reader, height, signature["signature"])
    assert error.value.status == 403
    return error.value.detail.field


def test_owner_reads_with_its_key_others_are_refused(owned):
    api, pid, owner, unowned = owned
    chain_id, height = api.node.app.chain_id, api.node.store.last_height()
    me = address_to_str(owner.address())
    auth = sign_log_read(chain_id, [owner], me, pid, height)
    api.authorise_log_read(pid, me, height, auth["signature"])  # accepted: raises nothing
    stranger = PrivateKey(1, b"\x46" * 32)
    theirs = address_to_str(stranger.address())
    assert refused(api, pid, theirs, height, sign_log_read(chain_id, [stranger], theirs, pid, height)) == "reader"
    assert refused(api, pid, me, height, sign_log_read(chain_id, [stranger], me, pid, height)) == "signature"
    assert refused(api, pid, me, height, sign_log_read(chain_id, [owner], me, unowned, height)) == "signature"
    assert refused(api, unowned, me, height, sign_log_read(chain_id, [owner], me, unowned, height)) == "reader"
    assert refused(api, pid, me, height + 1, sign_log_read(chain_id, [owner], me, pid, height + 1)) == "height"
    if height > MAX_LOG_READ_AGE:
        old = height - MAX_LOG_READ_AGE - 1
        assert refused(api, pid, me, old, sign_log_read(chain_id, [owner], me, pid, old)) == "height"
