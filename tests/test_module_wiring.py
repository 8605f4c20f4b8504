"""Modules meet only where node/ wires them: devices reaches identity through its expected.py, and
the app reaches parameters, validators and the unknown-action error through Module hooks."""

from __future__ import annotations

import json

import msgspec
import pytest

from cityledger.app import abc
from cityledger.app.application import CityApp
from cityledger.app.router import ActionRouter
from cityledger.core.errors import ErrorCatalog, TxError
from cityledger.core.events import ValidatorUpdate
from cityledger.core.keys import PrivateKey
from cityledger.core.state import DictState, Overlay
from cityledger.core.statekeys import PREFIX_BANK, PREFIX_DEVICES, PREFIX_GOVERNANCE
from cityledger.core.storage import Store
from cityledger.core.types import address_to_str
from cityledger.modules import bank, devices, governance
from cityledger.modules.base import Context, Module, compute_param_tables
from cityledger.modules.devices import Decommission, RegisterDevice, compute_device_did, compute_registration_bytes
from cityledger.modules.governance.errors import ERR_UNKNOWN_ACTION
from cityledger.modules.governance.handlers import get_validator_power
from cityledger.modules.identity.messages import (
    KIND_DEVICE,
    KIND_ORGANISATION,
    PURPOSE_ASSERTION,
    DidRecord,
    VerificationKey,
)
from cityledger.node.modules import default_modules

CHAIN = "wiring-city"
MAKER_DID = "did:city:Maker1"


class RecordingIdentity:
    """Identity as devices/expected.py declares it; it keeps DIDs in memory and records each write."""

    def __init__(self, maker: PrivateKey) -> None:
        self.records = {MAKER_DID: DidRecord(MAKER_DID, KIND_ORGANISATION, maker.signer(),
                                             [VerificationKey("key-1", maker.public_key, [PURPOSE_ASSERTION])],
                                             [], 1, 1, 1, False)}
        self.writes: list[tuple[str, str]] = []

    def get_did(self, state, did):
        return self.records.get(did)

    def keys_for(self, record, purpose):
        return [] if record.deactivated else [vk.key for vk in record.keys if purpose in vk.purposes]

    def is_accredited(self, state, did, credential_type):
        return did == MAKER_DID and credential_type == devices.MANUFACTURER_TYPE

    def create_did_record(self, ctx, kind, controller, salt, keys, services):
        record = DidRecord(compute_device_did(controller.keys[0]), kind, controller, keys, services, 1,
                           ctx.height, ctx.height, False)
        self.records[record.did] = record
        self.writes.append(("create", record.did))
        return record

    def deactivate(self, ctx, record):
        self.records[record.did] = msgspec.structs.replace(record, deactivated=True)
        self.writes.append(("deactivate", record.did))

    def verify_presentation(self, state, request, presentation):
        raise AssertionError("registration and decommissioning present no credential")


def registration(maker: PrivateKey, device: PrivateKey) -> RegisterDevice:
    unsigned = RegisterDevice("meter", "M-1", device.public_key, MAKER_DID, b"", b"")
    statement = compute_registration_bytes(CHAIN, unsigned)
    return msgspec.structs.replace(unsigned, manufacturer_signature=maker.sign(statement),
                                   device_signature=device.sign(statement))


def test_devices_writes_only_its_own_keys_and_asks_identity_for_the_did():
    maker, device = PrivateKey(1, b"\x05" * 32), PrivateKey(1, b"\x06" * 32)
    identity = RecordingIdentity(maker)
    module = devices.new_module(identity)
    state = Overlay(DictState())
    module.handlers[RegisterDevice](Context(state, CHAIN, 5, 0), registration(maker, device))
    did = compute_device_did(device.public_key)
    assert identity.writes == [("create", did)] and identity.records[did].kind == KIND_DEVICE
    module.handlers[Decommission](Context(state, CHAIN, 6, 0, signer=maker.signer()), Decommission(did))
    assert identity.writes == [("create", did), ("deactivate", did)]
    assert state.writes and all(key[0] == PREFIX_DEVICES for key in state.writes)
    for invariant in module.invariants:
        invariant(state)


def test_invalid_params_without_a_key_under_the_module_prefix():
    errors = ErrorCatalog("wiring")
    with pytest.raises(ValueError, match="needs a param_key"):
        Module("wiring", PREFIX_BANK, errors, {}, params={"wiring.x": (1, 0, 2)})
    with pytest.raises(ValueError, match="not under the module's prefix 0x01"):
        Module("wiring", PREFIX_BANK, errors, {}, params={"wiring.x": (1, 0, 2)}, param_key=governance.param_key)


def test_parameter_keys_stay_where_governance_kept_them():
    # Parameter values are consensus state: moving their keys would change the app hash.
    specs, keys = compute_param_tables([governance.MODULE, bank.MODULE])
    name = "governance.voting_period_blocks"
    assert keys == {name: bytes((PREFIX_GOVERNANCE, 0x05, len(name))) + name.encode()}
    assert specs[name][0] == 10_000
    with pytest.raises(ValueError, match="declared by two modules"):
        compute_param_tables([governance.MODULE, governance.MODULE])


def test_invalid_action_gets_the_error_its_module_declares():
    with pytest.raises(TxError) as raised:
        ActionRouter([governance.MODULE]).decode(b"\x93\xa3bad\x01\x02")
    assert (raised.value.codespace, raised.value.code) == ("governance", ERR_UNKNOWN_ACTION.code)
    with pytest.raises(TxError) as raised:
        ActionRouter([bank.MODULE]).decode(b"\x93\xa3bad\x01\x02")
    assert (raised.value.codespace, raised.value.code) == ("tx", 8)


def test_engine_genesis_validators_are_adopted_through_the_hook(tmp_path):
    # CometBFT's genesis.json names the validators when the app_state names none.
    key = bytes(range(32))
    member = PrivateKey(1, b"\x07" * 32)
    app_state = {"governance": {"members": [{"name": "m", "address": address_to_str(member.address())}]}}
    app = CityApp(Store(tmp_path / "ledger.sqlite"), default_modules(), CHAIN)
    result = app.init_chain(abc.InitChainRequest(chain_id=CHAIN, time_ns=1, initial_height=1,
                                                 app_state_bytes=json.dumps(app_state).encode(),
                                                 validators=(ValidatorUpdate("ed25519", key, 10),)))
    assert result.validators == (ValidatorUpdate("ed25519", key, 10),)
    assert get_validator_power(app.store, key) == 10
