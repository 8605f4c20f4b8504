"""The vault service against a real ledger: a bound vehicle seals for its owner's vault key and its
consumers' keys as the ledger lists them, the gateway (its ledger registry, its anchor callable) files
the records, the owner reads back exactly its samples, a consumer reads only under a consent valid now
(not without one, not for another purpose, not once expired or revoked), every consumer read and every
erasure is logged, signed and anchored in one tx per batch, and a log that leaves a read out fails
the owner's check against the anchors. Also consent's vault keys: registered, rotated, refused when
malformed, of small order, or for an account or DID the signer does not hold."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest

from test_consent import Consents
from test_devices import new_device
from test_identity_fixtures import City
from test_sdk_telemetry import LedgerClient
from telemetry_helpers import vehicle_samples
from cityledger.core.keys import PrivateKey
from cityledger.core.types import address_to_str
from cityledger.modules.identity.did import compute_did
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from test_consent import consent_state
from cityledger.modules.consent import ERRORS, get_vault_key, is_usable_vault_key
from cityledger.modules.consent.vaultkeys import _SMALL_ORDER
from cityledger.modules.consent import RegisterVaultKey
from cityledger.modules.devices import compute_device_did
from cityledger.offchain.telemetry import DeviceConfig, DeviceSealer, SequenceCounter, VaultKey
from cityledger.offchain.telemetry.broker import device_topic
from cityledger.offchain.telemetry.gateway import Gateway
from cityledger.offchain.telemetry.registry import LedgerDevices
from cityledger.offchain.vaults import VaultError, VaultHost
from cityledger.offchain.vaults.accesslog import AccessLog, LogBroken, SignedEntry
from cityledger.offchain.vaults.service import (
    MAX_REQUEST_AGE,
    GatewayHeights,
    RequestSignature,
    VaultRequest,
    VaultService,
    compute_request_bytes,
)
from cityledger.sdk.telemetry import gateway_anchor
from cityledger.sdk.vaults import device_recipients, log_anchor_sender, log_anchors, service_keys
from cityledger.offchain.vaults.accesslog import verify_log
from cityledger.offchain.telemetry import open_record
import threading

import httpx
import msgspec
import uvicorn
from fastapi import FastAPI

from test_api_helpers import free_port
from cityledger.api import ServerLimits, server_config
from cityledger.api.errors import install_handlers
from cityledger.api.middleware import BodyBudget, CatchAll
from cityledger.api.routes.vaults import include_vaults
from cityledger.sdk import Client as Client_
from cityledger.sdk.errors import ApiError
from cityledger.sdk.vaults import open_records, sign_request, verify_vault_log

INTERVAL_S = 60
FIRST_INTERVAL = 29_000_000
WINDOWS = 6


class Client(LedgerClient):
    """LedgerClient plus status(), as devices call it."""

    def status(self):
        return SimpleNamespace(height=self.ledger.height())


class World:
    """The consent world, a vault service over it, and one vehicle streaming to a gateway."""

    def __init__(self, consents: Consents, tmp) -> None:
        self.c, self.ledger = consents, consents.ledger
        self.client = Client(self.ledger)
        self.chain_id = self.ledger.app.chain_id
        self.device_key = new_device(0x92)
        self.c.fleet.register(self.device_key).raise_for_error()
        self.device_did = compute_device_did(self.device_key.public_key)
        wallet = consents.city.wallet()
        self.owner_key = consents.fleet.owner(wallet, self.device_did)
        consents.fleet.bind(wallet, self.device_did, self.owner_key).raise_for_error()
        self.owner = address_to_str(self.owner_key.address())
        self.vault_key, self.insurer_key, self.lab_key = VaultKey.generate(), VaultKey.generate(), VaultKey.generate()
        self.ledger.send([self.owner_key], [RegisterVaultKey(self.owner, self.vault_key.public)]).raise_for_error()
        for office, key in ((consents.insurer, self.insurer_key), (consents.lab, self.lab_key)):
            self.ledger.send([office.keys[0]], [RegisterVaultKey(office.did, key.public)]).raise_for_error()
        self.data_set = self._data_set()
        self.now = FIRST_INTERVAL * INTERVAL_S
        self.host = VaultHost(tmp / "vaults")
        self.gateway = Gateway(tmp / "gateway", self.host, LedgerDevices(self.ledger.store),
                               gateway_anchor(self.client, self.chain_id, consents.gateway.keys, consents.gateway.did),
                               "127.0.0.1", 1, "unused", INTERVAL_S, clock=lambda: self.now,
                               verify_workers=0)  # batches fed by hand: checked in the gateway's thread
        self.log = AccessLog(tmp / "access.sqlite", consents.vault.did, consents.vault.keys[0])
        self.service = VaultService(self.host, self.log, self.ledger.store, self.chain_id,
                                    GatewayHeights(self.gateway, self.ledger.store, consents.gateway.did))
        self.sealer = DeviceSealer(self.device_key, DeviceConfig(self.device_did, self.vault_key.public,
                                                                 self.data_set, "vehicle/1"),
                                   SequenceCounter(tmp / "device.seq"))
        self.samples: list = []
        self.rng = random.Random(15)

    def _data_set(self) -> str:
        from cityledger.core.hashing import sha256
        from cityledger.modules.consent import RegisterDataSet, compute_data_set_id

        commitment = sha256(b"vault service data set")
        self.ledger.send([self.owner_key], [RegisterDataSet("vehicle-telemetry-1", commitment, self.device_did,
                                                            self.c.gateway.did, "")]).raise_for_error()
        return compute_data_set_id(self.owner_key.address(), self.device_did, "vehicle-telemetry-1", commitment)

    def stream(self, windows: int) -> list[bytes]:
        """The device seals `windows` windows for whom the ledger lists; the gateway files them and the
        interval is anchored. The record ids, in order."""
        owner_key, consumers = device_recipients(self.client, self.data_set)
        assert owner_key == self.vault_key.public
        messages = []
        for index in range(windows):
            start = self.now + index * 10
            samples = vehicle_samples(self.rng, start)
            self.samples.append(samples)
            raw = self.sealer.seal(start, samples, consumers)
            messages.append(SimpleNamespace(topic=device_topic(self.device_did), payload=raw, mid=index, qos=1))
        before = self.gateway.stored
        self.gateway.process_batch(messages)
        assert self.gateway.stored == before + windows, self.gateway.refused
        self.now += INTERVAL_S
        [anchored] = self.gateway.close_finished_intervals()
        return self.gateway.state.record_ids(anchored.interval)

    def request(self, keys, action: str, reader: str, **fields) -> tuple[VaultRequest, list[RequestSignature]]:
        request = VaultRequest(action, reader, fields.get("data_set", ""), fields.get("purpose", ""),
                               fields.get("start_s", 0), fields.get("end_s", 0), fields.get("after_seq", 0),
                               fields.get("height", self.ledger.height()))
        payload = compute_request_bytes(self.chain_id, request)
        return request, [RequestSignature(key.public_key, key.sign(payload)) for key in keys]

    def owner_read(self, **fields):
        fields = {"data_set": self.data_set, "start_s": 0, "end_s": 2**40} | fields
        return self.service.read_owner(*self.request([self.owner_key], "read", self.owner, **fields))

    def consumer_read(self, office, purpose: str = "insurance-pricing", **fields):
        fields = {"data_set": self.data_set, "purpose": purpose, "start_s": 0, "end_s": 2**40} | fields
        return self.service.read_consumer(*self.request(office.keys, "consumer-read", office.did, **fields))

    def grant(self, office, purpose: str = "insurance-pricing", expiry_in: int = 100) -> int:
        height = self.ledger.height()
        return self.c.granted(self.data_set, consumer=office.did, purpose=purpose, period=(1, height + expiry_in), key=self.owner_key,
                              expiry=height + expiry_in)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return World(Consents(City(tmp_path_factory.mktemp("vault-service"))), tmp_path_factory.mktemp("vs"))


def refused(call, code: str, field: str) -> None:
    with pytest.raises(VaultError) as caught:
        call()
    assert (caught.value.code, caught.value.field) == (code, field), caught.value


def test_owner_reads_back_exactly_its_samples_and_no_one_else_can_ask_as_owner(world):
    world.stream(WINDOWS)
    released = world.owner_read()
    opened = [open_record(stored, wrap, world.vault_key) for _, stored, wrap in released.records]
    assert opened == world.samples[:WINDOWS]
    refused(lambda: world.service.read_owner(*world.request([world.c.stranger], "read", world.owner,
                                                            data_set=world.data_set, end_s=1)),
            "forbidden", "signatures")
    refused(lambda: world.owner_read(height=world.ledger.height() - MAX_REQUEST_AGE - 1), "forbidden", "height")
    refused(lambda: world.owner_read(height=world.ledger.height() + 1), "forbidden", "height")
    refused(lambda: world.service.read_owner(*world.request([world.owner_key], "erase", world.owner)),
            "invalid", "action")
    assert world.log.head(world.owner) == (0, bytes(32))  # the owner's own reads are not logged


def test_a_consumer_reads_under_consent_only_its_own_wrap_and_each_read_is_logged(world):
    consent_id = world.grant(world.c.insurer)
    ids = world.stream(WINDOWS)  # sealed while the consent is active: wrapped for the insurer too
    released = world.consumer_read(world.c.insurer)
    assert [r[0] for r in released.records] == ids  # not the records sealed before the consent
    opened = [open_record(stored, wrap, world.insurer_key) for _, stored, wrap in released.records]
    assert opened == world.samples[WINDOWS:2 * WINDOWS]
    assert released.consent.id == consent_id and released.entry.entry.record_ids == ids
    assert released.entry.entry.reader == world.c.insurer.did and released.entry.entry.purpose == "insurance-pricing"
    assert world.log.head(world.owner) == (1, released.entry.hash)


def test_consumers_without_consent_for_another_purpose_expired_or_revoked_are_refused(world):
    head = world.log.head(world.owner)
    refused(lambda: world.consumer_read(world.c.lab), "no_consent", "reader")
    refused(lambda: world.consumer_read(world.c.insurer, purpose="research"), "no_consent", "purpose")
    refused(lambda: world.consumer_read(world.c.insurer, purpose="marketing"), "no_consent", "purpose")
    short = world.grant(world.c.lab, purpose="research", expiry_in=2)
    assert world.consumer_read(world.c.lab, purpose="research").consent.id == short
    for _ in range(2):
        world.ledger.commit_block([])
    refused(lambda: world.consumer_read(world.c.lab, purpose="research"), "no_consent", "consent")
    revoked = world.grant(world.c.lab, purpose="maintenance")
    world.consumer_read(world.c.lab, purpose="maintenance")
    from cityledger.modules.consent import RevokeConsent
    world.ledger.send([world.owner_key], [RevokeConsent(revoked)]).raise_for_error()
    refused(lambda: world.consumer_read(world.c.lab, purpose="maintenance"), "no_consent", "consent")
    # A consumer signing as another, or with a stale height, is refused before any consent is looked at.
    request, signatures = world.request(world.c.lab.keys, "consent-read", world.c.insurer.did,
                                        data_set=world.data_set, purpose="insurance-pricing", end_s=2**40)
    refused(lambda: world.service.read_consumer(request, signatures), "invalid", "action")
    request, signatures = world.request(world.c.lab.keys, "consumer-read", world.c.insurer.did,
                                        data_set=world.data_set, purpose="insurance-pricing", end_s=2**40)
    refused(lambda: world.service.read_consumer(request, signatures), "forbidden", "signatures")
    assert world.log.head(world.owner)[0] == head[0] + 2  # the two granted reads, none of the refusals


def test_devices_stop_sealing_for_a_revoked_consumer(world):
    _, consumers = device_recipients(world.client, world.data_set)
    assert world.insurer_key.public in consumers and world.lab_key.public not in consumers


def _anchor(world) -> int:
    return world.service.anchor_due(log_anchor_sender(world.client, world.chain_id, world.c.vault.keys))


def test_the_log_is_anchored_in_one_tx_and_verifies_against_the_ledger(world):
    sent = world.client.sent
    assert _anchor(world) == 1 and world.client.sent == sent + 1
    assert _anchor(world) == 0 and world.client.sent == sent + 1  # nothing new: no tx
    entries = world.log.entries(world.owner)
    keys = service_keys(world.client, world.c.vault.did)
    anchors = log_anchors(world.client, world.c.vault.did, world.owner)
    assert anchors == [(len(entries), entries[-1].hash)]
    assert verify_log(entries, world.c.vault.did, keys, anchors, world.owner) == entries[-1].hash


def test_a_log_that_leaves_a_read_out_fails_the_owners_check(world):
    world.consumer_read(world.c.insurer)
    _anchor(world)
    entries = world.log.entries(world.owner)
    keys = service_keys(world.client, world.c.vault.did)
    anchors = log_anchors(world.client, world.c.vault.did, world.owner)
    verify_log(entries, world.c.vault.did, keys, anchors, world.owner)
    # The service drops the first read and re-chains and re-signs what is left: every entry verifies on
    # its own, but the hash at an anchored count is no longer the anchored head.
    from cityledger.offchain.vaults.accesslog import LogEntry, compute_entry_hash, compute_signing_bytes
    import msgspec

    rewritten, previous = [], bytes(32)
    for index, signed in enumerate(entries[1:]):
        entry = msgspec.structs.replace(signed.entry, seq=index + 1, previous=previous)
        digest = compute_entry_hash(entry)
        signature = world.c.vault.keys[0].sign(compute_signing_bytes(world.c.vault.did, digest))
        rewritten.append(SignedEntry(entry, digest, signature))
        previous = digest
    with pytest.raises(LogBroken, match="anchor"):
        verify_log(rewritten, world.c.vault.did, keys, anchors, world.owner)
    with pytest.raises(LogBroken, match="seq"):  # dropped without re-numbering
        verify_log([entries[0]] + entries[2:], world.c.vault.did, keys, anchors, world.owner)
    with pytest.raises(LogBroken, match="anchors"):  # the tail cut off
        verify_log(entries[:-1], world.c.vault.did, keys, anchors, world.owner)
    assert LogEntry  # the entry type the rewrite used


# -- over REST, through the SDK's client ------------------------------------------------------------

class VaultApi:
    """The vault routes (with the API's handlers and middleware) over the world's service, under uvicorn."""

    def __init__(self, world: World, service) -> None:
        app = FastAPI()
        install_handlers(app)
        app.add_middleware(BodyBudget)
        app.add_middleware(CatchAll)
        include_vaults(app, SimpleNamespace(vaults=service))
        self.app, self.port = app, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(server_config(app, "127.0.0.1", self.port, "warning", ServerLimits()))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        while not self.server.started:
            self.thread.join(0.01)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join()


@pytest.fixture(scope="module")
def api(world):
    with VaultApi(world, world.service) as served, Client_(served.url) as client:
        yield client


def _sign(world, keys, action: str, reader: str, **fields):
    return sign_request(world.chain_id, keys, action, reader, world.ledger.height(), **fields)


def test_rest_owner_reads_and_a_consumer_reads_under_consent(world, api):
    view = api.vault_read(_sign(world, [world.owner_key], "read", world.owner, data_set=world.data_set, end_s=2**40))
    assert [samples for _, samples in open_records(view, world.vault_key)] == world.samples
    view = api.vault_consumer_read(_sign(world, world.c.insurer.keys, "consumer-read", world.c.insurer.did,
                                         data_set=world.data_set, purpose="insurance-pricing", end_s=2**40))
    assert view.records and view.log_entry.reader == world.c.insurer.did
    assert [r.record_id for r in view.records] == view.log_entry.record_ids
    with pytest.raises(ApiError) as caught:
        api.vault_consumer_read(_sign(world, world.c.lab.keys, "consumer-read", world.c.lab.did,
                                      data_set=world.data_set, purpose="insurance-pricing", end_s=2**40))
    assert (caught.value.status, caught.value.field) == (403, "purpose")


def test_rest_log_verifies_against_the_anchors(world, api):
    _anchor(world)
    page = api.vault_log(_sign(world, [world.owner_key], "log", world.owner))
    assert page.service == world.c.vault.did and page.next_seq is None
    assert verify_vault_log(world.client, world.c.vault.did, world.owner, page.entries) == world.log.head(world.owner)[1]
    dropped = page.entries[:1] + page.entries[2:]
    with pytest.raises(LogBroken):
        verify_vault_log(world.client, world.c.vault.did, world.owner, dropped)


def _hostile_bodies(world) -> list[tuple[bytes, str]]:
    """(body, the field the refusal must name) for every kind of hostile value."""
    good = msgspec.to_builtins(_sign(world, [world.owner_key], "erase", world.owner, data_set=world.data_set))

    def with_(**changes) -> bytes:
        return msgspec.json.encode(good | changes)

    deep = b'{"reader": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    return [
        (with_(reader=world.owner + "\n"), "reader"),
        (with_(data_set=world.data_set + "\n"), "data_set"),
        (with_(purpose="x" * 300), "purpose"),
        (with_(height=2**64), "height"),
        (with_(height=-1), "height"),
        (with_(start_s=-5), "start_s"),
        (with_(after_seq=2**63), "after_seq"),
        (with_(signatures=[]), "signatures"),
        (with_(signatures=[{"scheme": "rsa", "key": "00", "signature": "00"}]), "signatures[0]"),
        (with_(signatures=[{"scheme": "ed25519", "key": "zz", "signature": "00"}]), "signatures[0]"),
        (with_(unknown=1), "unknown"),
        (with_(reader={"a": {"b": {"c": 1}}}), "reader"),
        (deep, "body"),
        (msgspec.json.encode(good).replace(world.owner.encode(), b"city\xff\xfe"), "body"),
        (b'{"reader": "' + b"a" * (70 * 1024) + b'"}', "body"),
        (with_(record_id="zz" * 32), "record_id"),
        (with_(record_id="abc"), "record_id"),
        (with_(record_id="AB" * 32), "record_id"),
        (with_(record_id="ab" * 33), "record_id"),
        (with_(record_id="ab" * 32 + "\n"), "record_id"),
        (with_(record_id="a" * 5000), "record_id"),
        (msgspec.json.encode(good | {"record_id": "RID"}).replace(b"RID", b"ab\xff\xfe"), "body"),
    ]


@pytest.mark.parametrize("route", ["read", "consumer-read", "log", "erase", "proof"])
def test_rest_hostile_values_are_named_4xx_and_change_nothing(world, api, route):
    head, keys = world.log.head(world.owner), list(world.host.vault(world.owner).store.key_blobs())
    for body, field in _hostile_bodies(world):
        response = httpx.post(f"{api_url(api)}/vaults/{route}", content=body,
                              headers={"content-type": "application/json"})
        assert 400 <= response.status_code < 500, (route, field, response.text)
        error = response.json()["error"]
        assert error["message"].startswith(field) or error.get("field") == field, (route, field, error)
    assert world.log.head(world.owner) == head
    assert list(world.host.vault(world.owner).store.key_blobs()) == keys


def test_rest_proof_refuses_another_owners_signature_and_a_missing_record_id(world, api):
    """Signed by another owner's key, for another action, or naming no record: refused before any lookup."""
    rogue = PrivateKey(1, b"\x66" * 32)
    cases = [(_sign(world, [rogue], "proof", world.owner, record_id="ab" * 32), 403, "signatures"),
             (_sign(world, [world.owner_key], "proof", world.owner), 400, "record_id"),
             (_sign(world, [world.owner_key], "read", world.owner, record_id="ab" * 32), 403, "signatures")]
    for body, status, field in cases:
        response = httpx.post(f"{api_url(api)}/vaults/proof", content=msgspec.json.encode(body),
                              headers={"content-type": "application/json"})
        assert (response.status_code, response.json()["error"]["field"]) == (status, field), response.text
    # A well-formed request of the owner on a node whose vault service proves nothing: 503, not 500.
    response = httpx.post(f"{api_url(api)}/vaults/proof", content=msgspec.json.encode(
        _sign(world, [world.owner_key], "proof", world.owner, record_id="ab" * 32)),
        headers={"content-type": "application/json"})
    assert response.status_code == 503 and response.json()["error"]["field"] == "vaults"


def test_rest_answers_503_without_a_vault_service(world):
    with VaultApi(world, None) as served:
        response = httpx.post(f"{served.url}/vaults/read", content=msgspec.json.encode(
            _sign(world, [world.owner_key], "read", world.owner)), headers={"content-type": "application/json"})
    assert response.status_code == 503 and response.json()["error"]["field"] == "vaults"


def api_url(client) -> str:
    return str(client._http.base_url).rstrip("/")


def test_erasure_shreds_the_data_sets_keys_and_is_logged(world):
    count_before = world.log.head(world.owner)[0]
    request = world.request([world.owner_key], "erase", world.owner, data_set=world.data_set)
    done = world.service.erase(*request)
    assert done.keys_destroyed > 0 and done.entry.entry.kind == "erase"
    assert done.entry.entry.seq == count_before + 1 and done.entry.entry.keys_destroyed == done.keys_destroyed
    assert world.owner_read().records == []
    assert world.consumer_read(world.c.insurer).records == []
    assert not any(True for _ in world.host.vault(world.owner).store.key_blobs())
    assert _anchor(world) == 1
    entries = world.log.entries(world.owner)
    verify_log(entries, world.c.vault.did, service_keys(world.client, world.c.vault.did),
               log_anchors(world.client, world.c.vault.did, world.owner), world.owner)
    refused(lambda: world.service.erase(*world.request([world.owner_key], "erase", world.owner,
                                                       data_set="ds-\nnot")), "invalid", "data_set")


# -- consent's vault keys on the ledger (the Consents owner and DIDs, apart from the vehicle above) ------

UNKNOWN_DID = compute_did(PrivateKey(1, b"\x77" * 32).signer(), bytes(16))


def refused_tx(world, signer, message, name: str, field: str) -> None:
    before = consent_state(world.c.ledger)
    outcome = world.c.ledger.send([signer], [message])
    assert outcome.codespace == "consent" and ERRORS.codes()[outcome.code] == name, outcome
    assert field in outcome.log
    assert consent_state(world.c.ledger) == before


def test_vault_keys_an_owner_registers_and_rotates_its_vault_key(world):
    first, second = VaultKey.generate(), VaultKey.generate()
    account = address_to_str(world.c.owner.address())
    outcome = world.c.ledger.send([world.c.owner], [RegisterVaultKey(account, first.public)]).raise_for_error()
    assert [e.type for e in outcome.events] == ["vault_key_registered"]
    answer = world.c.ledger.query("/consent/vault_key", subject=account)
    assert answer == {"subject": account, "key": first.public.hex(), "height": world.c.ledger.height()}
    world.c.ledger.send([world.c.owner], [RegisterVaultKey(account, second.public)]).raise_for_error()
    assert get_vault_key(world.c.ledger.store, account).key == second.public
    world.c.ledger.app.check_invariants()


def test_vault_keys_a_consumer_registers_under_its_did_signed_by_its_controller(world):
    key = VaultKey.generate()
    consumer = world.c.rogue_vault
    world.c.ledger.send([consumer.keys[0]], [RegisterVaultKey(consumer.did, key.public)]).raise_for_error()
    assert get_vault_key(world.c.ledger.store, world.c.rogue_vault.did).key == key.public
    refused_tx(world, world.c.owner, RegisterVaultKey(world.c.lab.did, key.public), "not_controller", "subject")
    refused_tx(world, world.c.owner, RegisterVaultKey(UNKNOWN_DID, key.public), "invalid_vault_key", "subject")
    stranger = address_to_str(world.c.stranger.address())
    for subject in ("", "not a did\n", "did:city:nobody", stranger, stranger.upper()):
        refused_tx(world, world.c.owner, RegisterVaultKey(subject, key.public), "not_owner", "subject")


@pytest.mark.parametrize("key", [b"", b"\x01" * 31, b"\x01" * 33, *sorted(_SMALL_ORDER),
                                 bytes.fromhex("ec" + "ff" * 31)])
def test_vault_keys_malformed_and_small_order_keys_are_refused(world, key):
    account = address_to_str(world.c.owner.address())
    refused_tx(world, world.c.owner, RegisterVaultKey(account, key), "invalid_vault_key", "key")


def test_vault_keys_the_small_order_list_is_what_x25519_refuses():
    # Each listed point (and its top-bit twin) gives an all-zero shared secret, which cryptography refuses.
    private = X25519PrivateKey.generate()
    for point in _SMALL_ORDER:
        for twin in (point, point[:-1] + bytes([point[-1] | 0x80])):
            assert not is_usable_vault_key(twin)
            with pytest.raises(ValueError):
                private.exchange(X25519PublicKey.from_public_bytes(twin))
    assert is_usable_vault_key(VaultKey.generate().public)


def test_vault_keys_the_query_names_an_unknown_or_malformed_subject(world):
    for subject in ("city" + "00" * 20, "nonsense", ""):
        with pytest.raises(Exception, match="subject"):
            world.c.ledger.query("/consent/vault_key", subject=subject)
