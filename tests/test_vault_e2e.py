"""End to end on a real node with [telemetry] enabled: the node starts the project's Mosquitto, the gateway
and the vault service; a registered, bound vehicle publishes over MQTT, sealed for its owner's and its
consumers' vault keys as the ledger lists them; the owner reads back exactly its samples through the
REST API and the SDK; a consumer without consent, with another purpose, an expired or a revoked
consent is refused; the owner's access log verifies against the anchors the node put on chain."""

from __future__ import annotations

import json
import random
import struct
import threading
import time

import httpx
import msgspec
import paho.mqtt.client as mqtt
import pytest

from test_api_helpers import LiveServer
from test_vaults import _clear_forms, _files_bytes, _find
from test_consent import Consents
from test_devices import new_device
from test_identity_fixtures import City
from telemetry_helpers import vehicle_samples
from cityledger.core.hashing import sha256
from cityledger.core.keys import PrivateKey
from cityledger.core.types import address_to_str
from cityledger.modules.consent import RegisterDataSet, RegisterVaultKey, RevokeConsent, compute_data_set_id
from cityledger.modules.devices import Decommission, compute_device_did
from cityledger.modules.identity import compute_did
from cityledger.node.home import init_home, load_config, load_key, write_key_file
from cityledger.node.runner import Node
from cityledger.offchain.identity.ledger import NodeLedger
from cityledger.offchain.telemetry import DeviceConfig, DeviceSealer, SequenceCounter, VaultKey
from cityledger.offchain.telemetry.broker import find_binary
from cityledger.cli.main import app
from cityledger.offchain.vaults import save_key_file
from cityledger.sdk import Client, Keystore
from cityledger.sdk.keystore import MIN_SCRYPT_N
from typer.testing import CliRunner
from cityledger.sdk.errors import ApiError
from cityledger.sdk.vaults import (ProofRefused, device_recipients, open_records, sign_request, verify_inclusion,
                                   verify_vault_log)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(find_binary("mosquitto") is None,
                       reason="mosquitto not installed: run scripts/install_mosquitto.sh (make install does)"),
]

WAIT_S = 30.0  # upper bound on any wait below; nothing asserts how long a step took
GATEWAY_SEED, VAULT_SEED = 0x81, 0x82  # the seeds Consents gives its gateway and vault service offices
WINDOWS = 4
runner = CliRunner()
PASS_ENV = {"CL_TEST_PASS": "open sesame"}


def _office_did(seed: int) -> str:
    return compute_did(PrivateKey(1, bytes([seed]) * 32).signer(), b"")


def _telemetry_home(home) -> None:
    """An `init` home (3 members, no hosted issuers) with [telemetry] enabled for the offices Consents makes."""
    init_home(home, members=3, issuers=False)
    for name, seed in (("gateway", GATEWAY_SEED), ("vault-service", VAULT_SEED)):
        write_key_file(home / "keys" / f"{name}.json", PrivateKey(1, bytes([seed]) * 32), name)
    text = (home / "config.toml").read_text()
    head, tail = text.split("[telemetry]\n", 1)
    tail = tail[tail.index("\n["):]
    (home / "config.toml").write_text(
        head + "[telemetry]\nenabled = true\ninterval_s = 1\n"
        f'gateway_did = "{_office_did(GATEWAY_SEED)}"\ngateway_key = "keys/gateway.json"\n'
        f'vault_service_did = "{_office_did(VAULT_SEED)}"\nvault_service_key = "keys/vault-service.json"\n' + tail)


class NodeCity(City):
    """City's governance and offices over a running node's ledger instead of an in-process chain."""

    def __init__(self, tmp_path, node: Node) -> None:
        self.tmp_path, self.node = tmp_path, node
        self.ledger = NodeLedger(node)
        self.ledger.store = node.store  # what City's helpers read proposal ids from
        self.ledger.query = lambda path, **args: _query(node, path, args)
        self.chain_id = node.app.chain_id
        self.members = [load_key(node.config.home / "keys" / f"{slug}.json")
                        for slug in ("city-government", "car-maker", "grid-operator")]
        self.offices = {}


def _query(node: Node, path: str, args: dict):
    import json

    result = node.app.query(path, json.dumps(args).encode())
    if result.code == 1:
        raise LookupError(result.log)
    if result.code:
        raise ValueError(result.log)
    return json.loads(result.value)


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("vault-e2e")
    _telemetry_home(tmp / "home")
    config = load_config(tmp / "home")
    config.solo.block_interval_ms = 20
    node = Node(config)
    with LiveServer(node) as server, Client(server.url) as client:
        yield node, Consents(NodeCity(tmp, node)), client, tmp, server, {}


def _bound_vehicle(consents: Consents, seed: int):
    device = new_device(seed)
    consents.fleet.register(device).raise_for_error()
    did = compute_device_did(device.public_key)
    wallet = consents.city.wallet()
    owner = consents.fleet.owner(wallet, did)
    consents.fleet.bind(wallet, did, owner).raise_for_error()
    return device, did, owner


def _publish(node: Node, did: str, payloads: list[bytes]) -> None:
    """The device's own MQTT client: its broker credentials, its topic, QoS 1."""
    creds = node.telemetry.broker.add_device(did)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"dev-{random.getrandbits(32)}")
    client.username_pw_set(creds.username, creds.password)
    connected = threading.Event()
    client.on_connect = lambda *args: connected.set()
    client.connect(creds.host, creds.port)
    client.loop_start()
    try:
        assert connected.wait(WAIT_S)
        for payload in payloads:
            client.publish(creds.topic, payload, qos=1).wait_for_publish(WAIT_S)
    finally:
        client.disconnect()
        client.loop_stop()


def _wait_anchored(node: Node, count: int) -> None:
    """Until the gateway stored `count` records and anchored every interval holding them."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        gateway = node.telemetry.gateway
        roots = gateway.roots()
        if gateway.stored >= count and roots and all(r.anchored for r in roots) \
                and sum(r.count for r in roots) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"not anchored: stored {gateway.stored}, refused {dict(gateway.refused)}, roots {roots}")


def test_a_vehicle_publishes_and_only_its_owner_and_consenting_consumers_read(running):
    node, consents, client, tmp, _, shared = running
    device, did, owner = _bound_vehicle(consents, 0x93)
    account = address_to_str(owner.address())
    vault_key, insurer_key, lab_key = VaultKey.generate(), VaultKey.generate(), VaultKey.generate()
    ledger = consents.ledger
    ledger.send([owner], [RegisterVaultKey(account, vault_key.public)]).raise_for_error()
    for office, key in ((consents.insurer, insurer_key), (consents.lab, lab_key)):
        ledger.send([office.keys[0]], [RegisterVaultKey(office.did, key.public)]).raise_for_error()
    commitment = sha256(b"e2e data set")
    ledger.send([owner], [RegisterDataSet("vehicle-telemetry-1", commitment, did, consents.gateway.did, "")]) \
        .raise_for_error()
    data_set = compute_data_set_id(owner.address(), did, "vehicle-telemetry-1", commitment)
    height = ledger.height()
    consents.grant(data_set, consumer=consents.insurer.did, purpose="insurance-pricing", period=(1, height + 1000),
                   expiry=height + 1000, key=owner).raise_for_error()
    consents.grant(data_set, consumer=consents.lab.did, purpose="research", period=(1, ledger.height() + 3),
                   expiry=ledger.height() + 3, key=owner).raise_for_error()
    insurer, short = [c["id"] for c in client.query("consent", "consents", data_set=data_set)["items"]]

    # The device learns from the ledger whom to seal for, and publishes over the real Mosquitto.
    owner_key, consumers = device_recipients(client, data_set)
    assert owner_key == vault_key.public and set(consumers) == {insurer_key.public, lab_key.public}
    sealer = DeviceSealer(device, DeviceConfig(did, owner_key, data_set, "vehicle/1"), SequenceCounter(tmp / "seq"))
    rng, start = random.Random(7), int(time.time()) // 10 * 10 - 600
    windows = [vehicle_samples(rng, start + 10 * i) for i in range(WINDOWS)]
    _publish(node, did, [sealer.seal(start + 10 * i, windows[i], consumers) for i in range(WINDOWS)])
    _wait_anchored(node, WINDOWS)

    def signed(keys, action, reader, **fields):
        status = client.status()
        return sign_request(status.chain_id, keys, action, reader, status.height, data_set=data_set,
                            end_s=2**40, **fields)

    view = client.vault_read(signed([owner], "read", account))
    assert [samples for _, samples in open_records(view, vault_key)] == windows
    released = client.vault_consumer_read(signed(consents.insurer.keys, "consumer-read", consents.insurer.did,
                                                 purpose="insurance-pricing"))
    assert [samples for _, samples in open_records(released, insurer_key)] == windows
    assert released.consent_id == insurer

    def refused(keys, reader, purpose, field):
        with pytest.raises(ApiError) as caught:
            client.vault_consumer_read(signed(keys, "consumer-read", reader, purpose=purpose))
        assert (caught.value.status, caught.value.field) == (403, field), caught.value

    refused(consents.rogue_vault.keys, consents.rogue_vault.did, "insurance-pricing", "reader")  # no consent
    refused(consents.insurer.keys, consents.insurer.did, "research", "purpose")  # another purpose
    for _ in range(3):  # blocks pass: the lab's short consent expires
        ledger.send([owner], [RegisterVaultKey(account, vault_key.public)]).raise_for_error()
    refused(consents.lab.keys, consents.lab.did, "research", "consent")  # expired
    ledger.send([owner], [RevokeConsent(insurer)]).raise_for_error()
    refused(consents.insurer.keys, consents.insurer.did, "insurance-pricing", "consent")  # revoked
    assert short > insurer

    # The one granted read is in the owner's log, anchored by the node, and verifies against the ledger.
    assert node.telemetry.anchor_logs_now() == 1
    page = client.vault_log(signed([owner], "log", account))
    assert [(e.kind, e.reader) for e in page.entries] == [("read", consents.insurer.did)]
    verify_vault_log(client, page.service, account, page.entries)
    _assert_no_sample_in_clear(node, [sample for window in windows for sample in window])
    shared.update(owner=owner, vault_key=vault_key, insurer_key=insurer_key, data_set=data_set, windows=windows)


def test_the_owner_proves_a_record_and_anyone_checks_it_against_the_ledger(running):
    node, consents, client, tmp, server, shared = running
    if not shared:
        pytest.skip("proves the records of test_a_vehicle_publishes_and_only_its_owner_and_consenting_consumers_read")
    owner, data_set = shared["owner"], shared["data_set"]
    account = address_to_str(owner.address())

    def signed(keys, action, reader=account, **fields):
        status = client.status()
        return sign_request(status.chain_id, keys, action, reader, status.height, **fields)

    records = client.vault_read(signed([owner], "read", data_set=data_set, end_s=2**40)).records
    assert len(records) == WINDOWS
    for item in records:
        view = client.vault_proof(signed([owner], "proof", record_id=item.record_id))
        assert (view.owner, view.record_id, view.record, view.shard) == (account, item.record_id, item.record, None)
        assert verify_inclusion(client, view, item.record).hex() == item.record_id
    blob = bytearray(bytes.fromhex(item.record))
    blob[-1] ^= 1
    path = [("0" if view.proof.path[0][0] != "0" else "1") + view.proof.path[0][1:], *view.proof.path[1:]] \
        if view.proof.path else ["00" * 32]
    roots = client.query("consent", "gateway_roots", gateway=view.gateway_did)["items"]
    other = next((r for r in roots if r["interval"] != view.interval), None)
    assert other is not None or view.count == WINDOWS  # the windows spread over intervals, or share one
    hostile = [(view, bytes(blob)),
               (msgspec.structs.replace(view, proof=msgspec.structs.replace(view.proof, path=path)), item.record),
               (msgspec.structs.replace(view, interval=view.interval + 10**6), item.record)]
    if other is not None:
        hostile.append((msgspec.structs.replace(view, interval=other["interval"], root=other["root"],
                                                count=other["count"]), item.record))
    for tampered, record in hostile:
        with pytest.raises(ProofRefused):
            verify_inclusion(client, tampered, record)
    # The direct query behind the check, over REST: one interval's root, and hostile values named.
    assert client.query("consent", "gateway_root", gateway=view.gateway_did, interval=view.interval)["root"] == view.root
    for params, status, field in (({"gateway": view.gateway_did, "interval": "1"}, 404, "interval"),
                                  ({"gateway": view.gateway_did, "interval": "-1"}, 400, "interval"),
                                  ({"gateway": view.gateway_did, "interval": "1\n"}, 400, "interval"),
                                  ({"gateway": view.gateway_did, "interval": "9" * 5_000}, 400, "interval"),
                                  ({"gateway": "did:city:\n", "interval": "1"}, 400, "gateway"),
                                  ({"interval": "1"}, 400, "gateway")):
        answer = httpx.get(f"{server.url}/query/consent/gateway_root", params=params)
        assert answer.status_code == status and field in answer.text, (params, answer.text)
    answer = httpx.get(f"{server.url}/query/consent/gateway_root?gateway=did%3Acity%3A%FF&interval=1")
    assert answer.status_code == 400, answer.text  # invalid UTF-8
    for keys, record_id, reader, status in (([owner], "ab" * 32, account, 404),
                                            (consents.insurer.keys, item.record_id,
                                             address_to_str(consents.insurer.keys[0].address()), 403)):
        with pytest.raises(ApiError) as caught:
            client.vault_proof(signed(keys, "proof", reader, record_id=record_id))
        assert (caught.value.status, caught.value.field) == (status, "record_id"), caught.value

    # The CLI: the owner prints the proof, anyone checks it (and a tampered record is refused).
    keystore = Keystore(node.config.home / "keystore", scrypt_n=MIN_SCRYPT_N)
    keystore.import_key("prover", owner, PASS_ENV["CL_TEST_PASS"])
    common = ["--home", str(node.config.home), "--node", server.url]
    printed = runner.invoke(app, ["vault", "proof", item.record_id, "--key", "prover", *common, "--passphrase-env",
                                  "CL_TEST_PASS"], env=PASS_ENV)
    assert printed.exit_code == 0, printed.output
    assert json.loads(printed.output)["record_id"] == item.record_id
    (tmp / "proof.json").write_text(printed.output)
    (tmp / "tampered.hex").write_text(bytes(blob).hex())
    checked = runner.invoke(app, ["vault", "verify-proof", "--proof", str(tmp / "proof.json"), *common])
    assert checked.exit_code == 0 and "verified" in checked.output, checked.output
    refused = runner.invoke(app, ["vault", "verify-proof", "--proof", str(tmp / "proof.json"), "--record",
                                  str(tmp / "tampered.hex"), *common])
    assert refused.exit_code != 0 and "refused" in refused.output, refused.output


def _assert_no_sample_in_clear(node: Node, samples: list) -> None:
    """No file of the telemetry folder (the broker's log and what it saved, gateway state, vaults, access log)
    holds a sample value as text, as packed integers or as a float, and the ledger's files hold none
    in a binary form. (The ledger is not scanned for decimal text: its AnonCreds definitions are
    thousands of decimal digits, where any 5-digit speed turns up by chance.)"""
    floats = [struct.pack(fmt, value / 1e7) for s in samples for value in s.values[:2] for fmt in (">d", "<d")]
    forms = _clear_forms(samples) + floats
    binary = [form for form in forms if not form.isdigit()]
    telemetry = _files_bytes(node.config.telemetry_path)
    assert sum(len(data) for data in telemetry.values()) > WINDOWS * 300  # the scan saw the ciphertext
    assert _find(forms, telemetry) == []
    assert _find(binary, _files_bytes(node.config.home / "data")) == []


def test_the_cli_reads_logs_grants_revokes_and_erases(running):
    node, consents, client, tmp, server, shared = running
    if not shared:
        pytest.skip("reads the vehicle of test_a_vehicle_publishes_and_only_its_owner_and_consenting_consumers_read")
    home = node.config.home
    keystore = Keystore(home / "keystore", scrypt_n=MIN_SCRYPT_N)
    keystore.import_key("owner", shared["owner"], PASS_ENV["CL_TEST_PASS"])
    keystore.import_key("insurer", consents.insurer.keys[0], PASS_ENV["CL_TEST_PASS"])
    save_key_file(tmp / "owner.vault", shared["vault_key"])
    save_key_file(tmp / "insurer.vault", shared["insurer_key"])

    def cli(*args: str):
        return runner.invoke(app, [*args, "--home", str(home), "--node", server.url, "--passphrase-env",
                                   "CL_TEST_PASS"], env=PASS_ENV)

    made = runner.invoke(app, ["vault", "key-new", str(tmp / "new.vault")])
    assert made.exit_code == 0 and (tmp / "new.vault").stat().st_mode & 0o077 == 0
    again = runner.invoke(app, ["vault", "key-new", str(tmp / "new.vault")])
    assert again.exit_code != 0 and "path" in again.output
    data_set = shared["data_set"]
    read = cli("vault", "read", "--key", "owner", "--vault-key", str(tmp / "owner.vault"), "--data-set", data_set)
    assert read.exit_code == 0, read.output
    assert [[tuple(s[1:]) for s in w["samples"]] for w in json.loads(read.output)] == \
        [[s.values for s in window] for window in shared["windows"]]
    refused = cli("vault", "read", "--key", "insurer", "--vault-key", str(tmp / "insurer.vault"), "--data-set",
                  data_set, "--consent", "insurance-pricing", "--consumer", consents.insurer.did)
    assert refused.exit_code != 0 and "consent" in refused.output  # revoked in the test before
    height = client.status().height
    granted = cli("consent", "grant", "--key", "owner", "--data-set", data_set, "--consumer", consents.lab.did,
                  "--purpose", "maintenance", "--to-height", str(height + 50), "--expiry-height", str(height + 50))
    assert granted.exit_code == 0 and "granted" in granted.output, granted.output
    consent_id = granted.output.split()[1]
    revoked = cli("consent", "revoke", "--key", "owner", consent_id)
    assert revoked.exit_code == 0 and "revoked" in revoked.output, revoked.output
    assert cli("vault", "erase", "--key", "owner").exit_code != 0  # neither --data-set nor --all
    erased = cli("vault", "erase", "--key", "owner", "--data-set", data_set)
    assert erased.exit_code == 0 and "key(s) destroyed" in erased.output, erased.output
    after = cli("vault", "read", "--key", "owner", "--vault-key", str(tmp / "owner.vault"), "--data-set", data_set)
    assert json.loads(after.output) == []
    node.telemetry.anchor_logs_now()
    logged = cli("vault", "log", "--key", "owner", "--json")
    assert logged.exit_code == 0, logged.output
    body = json.loads(logged.output)
    assert body["verified"] and [e["kind"] for e in body["entries"]] == ["read", "erase"]


def test_a_decommissioned_device_loses_its_broker_credentials(running):
    node, consents, client, tmp, server, shared = running
    device, did, owner = _bound_vehicle(consents, 0x94)
    creds = node.telemetry.broker.add_device(did)
    assert node.telemetry.sync_devices() == []  # active on the ledger: kept
    consents.ledger.send([owner], [Decommission(did)]).raise_for_error()
    assert did in node.telemetry.sync_devices()
    assert did not in node.telemetry.broker.devices()
    client_ = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"dev-{random.getrandbits(32)}")
    client_.username_pw_set(creds.username, creds.password)
    answered, reasons = threading.Event(), []
    client_.on_connect = lambda _c, _u, _f, reason, _p: (reasons.append(reason), answered.set())
    client_.on_disconnect = lambda *args: answered.set()
    client_.connect(creds.host, creds.port)
    client_.loop_start()
    try:
        assert answered.wait(WAIT_S)
        assert not reasons or reasons[0].is_failure  # refused: not authorised any more
    finally:
        client_.loop_stop()


def test_a_device_gets_credentials_and_publishes_with_the_cli(running):
    node, consents, client, tmp, server, shared = running
    device, did, owner = _bound_vehicle(consents, 0x95)
    account, vault_key = address_to_str(owner.address()), VaultKey.generate()
    ledger = consents.ledger
    ledger.send([owner], [RegisterVaultKey(account, vault_key.public)]).raise_for_error()
    commitment = sha256(b"cli data set")
    ledger.send([owner], [RegisterDataSet("vehicle-telemetry-1", commitment, did, consents.gateway.did, "")]) \
        .raise_for_error()
    data_set = compute_data_set_id(owner.address(), did, "vehicle-telemetry-1", commitment)
    home = node.config.home
    added = runner.invoke(app, ["telemetry", "device-add", did, "--out", str(tmp / "dev.json"), "--home", str(home)])
    assert added.exit_code == 0, added.output
    assert did not in node.telemetry.broker.devices()  # written by another process: not yet taken up
    node.telemetry.sync_devices()  # the node's round: files regenerated, SIGHUP
    assert did in node.telemetry.broker.devices()
    Keystore(home / "keystore", scrypt_n=MIN_SCRYPT_N).import_key("device", device, PASS_ENV["CL_TEST_PASS"])
    rng, start = random.Random(9), int(time.time()) // 10 * 10 - 300
    readings = vehicle_samples(rng, start, 15)  # a window and a half
    (tmp / "samples.json").write_text(json.dumps([[s.t_s, *s.values] for s in readings]))
    broker = node.telemetry.broker
    before = node.telemetry.gateway.stored
    published = runner.invoke(app, ["telemetry", "publish", "--device-key", "device", "--data-set", data_set,
                                    "--samples", str(tmp / "samples.json"), "--credentials", str(tmp / "dev.json"),
                                    "--broker", f"{broker.host}:{broker.port}", "--counter", str(tmp / "dev.seq"),
                                    "--home", str(home), "--node", server.url, "--passphrase-env", "CL_TEST_PASS"],
                              env=PASS_ENV)
    assert published.exit_code == 0 and "published 2 window(s)" in published.output, published.output
    _wait_anchored(node, before + 2)
    status = client.status()
    view = client.vault_read(sign_request(status.chain_id, [owner], "read", account, status.height,
                                          data_set=data_set, end_s=2**40))
    assert [s for _, window in open_records(view, vault_key) for s in window] == readings
