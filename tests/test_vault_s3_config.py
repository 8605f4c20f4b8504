"""The [vaults] section: backend choice and S3 settings, every wrong value refused naming its setting.
No server is started here (tests/test_vault_s3.py runs the S3 backend against a real SeaweedFS)."""

from __future__ import annotations

import json
import os

import pytest

from cityledger.node.home import init_home, load_config
from cityledger.offchain.vaults import SqliteVaultStore
from cityledger.offchain.vaults.backends import (
    VaultsSettings,
    load_credentials,
    load_vaults_settings,
    open_vaults,
)
from cityledger.offchain.vaults.s3_store import S3VaultStore


def test_defaults_are_the_embedded_sqlite_store(tmp_path):
    assert load_vaults_settings({}) == VaultsSettings()
    vaults = open_vaults(load_vaults_settings({}), tmp_path, tmp_path / "vaults")
    assert isinstance(vaults.host.vault("city" + "ab" * 20).store, SqliteVaultStore)
    vaults.close()


def test_a_new_home_has_a_vaults_section_that_loads(tmp_path):
    init_home(tmp_path / "home")
    text = (tmp_path / "home" / "config.toml").read_text()
    assert "[vaults]" in text and 'backend = "sqlite"' in text
    assert load_config(tmp_path / "home").vaults == VaultsSettings()
    (tmp_path / "home" / "config.toml").write_text(text.replace('backend = "sqlite"', 'backend = "minio"'))
    with pytest.raises(ValueError, match=r"^vaults\.backend: expected one of 'sqlite', 's3', got 'minio'"):
        load_config(tmp_path / "home")


@pytest.mark.parametrize("section, field", [
    ({"backend": "S3"}, "vaults.backend"),
    ({"backend": 3}, "vaults.backend"),
    ({"endpoint": "ftp://x"}, "vaults.endpoint"),
    ({"endpoint": "http://host/a b"}, "vaults.endpoint"),
    ({"endpoint": "http://" + "a" * 3000}, "vaults.endpoint"),
    ({"bucket": "Upper"}, "vaults.bucket"),
    ({"bucket": "ab"}, "vaults.bucket"),
    ({"bucket": "a..b"}, "vaults.bucket"),
    ({"bucket": "-ab"}, "vaults.bucket"),
    ({"credentials_file": ""}, "vaults.credentials_file"),
    ({"credentials_file": "a\x00b"}, "vaults.credentials_file"),
    ({"region": "EU WEST"}, "vaults.region"),
    ({"port": 70000}, "vaults.port"),
    ({"port": -1}, "vaults.port"),
    ({"port": True}, "vaults.port"),
    ({"port": "8333"}, "vaults.port"),
    ({"secret_key": "x"}, "vaults.secret_key"),
])
def test_wrong_settings_are_refused_naming_the_setting(section, field):
    with pytest.raises(ValueError) as caught:
        load_vaults_settings(section)
    assert str(caught.value).startswith(field + ": ")


def test_credentials_file_is_checked_before_any_connection(tmp_path):
    settings = load_vaults_settings({"backend": "s3", "endpoint": "http://127.0.0.1:9", "credentials_file": "creds.json"})
    with pytest.raises(ValueError, match=r"^vaults\.credentials_file: .* does not exist"):
        open_vaults(settings, tmp_path, tmp_path / "vaults")
    path = tmp_path / "creds.json"
    path.write_text(json.dumps({"access_key": "a", "secret_key": "b"}))
    os.chmod(path, 0o644)
    with pytest.raises(ValueError, match=r"^vaults\.credentials_file: .* readable by others \(mode 644\)"):
        load_credentials(path)
    os.chmod(path, 0o600)
    assert load_credentials(path).access_key == "a"
    for bad in ("not json", json.dumps({"access_key": "a"}), json.dumps(["a", "b"]), json.dumps({"access_key": "", "secret_key": "b"})):
        path.write_text(bad)
        with pytest.raises(ValueError, match=r"^vaults\.credentials_file: "):
            load_credentials(path)


def test_unreachable_endpoint_is_named(tmp_path):
    path = tmp_path / "creds.json"
    path.write_text(json.dumps({"access_key": "a", "secret_key": "b"}))
    os.chmod(path, 0o600)
    # Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    settings = load_vaults_settings({"backend": "s3", "endpoint": "http://127.0.0.1:9", "credentials_file": str(path)})
    with pytest.raises(RuntimeError, match=r"^vaults\.endpoint: cannot connect"):
        open_vaults(settings, tmp_path, tmp_path / "vaults")


def test_store_refuses_malformed_items_before_any_request():
    store = S3VaultStore(client=None, bucket="b", prefix="ab12")  # no client: a request would fail loudly
    from cityledger.offchain.vaults import KeyBlob, PutItem, RecordMeta

    rid = bytes(32)
    cases = [
        (PutItem(b"short", b"x", RecordMeta("ds", 0), []), "items[0].record_id"),
        (PutItem(rid, "text", RecordMeta("ds", 0), []), "items[0].blob"),
        (PutItem(rid, b"x", RecordMeta("", 0), []), "items[0].meta.dataset"),
        (PutItem(rid, b"x", RecordMeta("ds", 2**63), []), "items[0].meta.window_start_s"),
        (PutItem(rid, b"x", RecordMeta("ds", 0), [KeyBlob(bytes(31) + b"\x01", b"r", b"e", b"c")]), "items[0].keys"),
        (PutItem(rid, b"x", RecordMeta("ds", 0), [KeyBlob(rid, b"r" * 65, b"e", b"c")]), "items[0].keys.recipient"),
        (PutItem(rid, b"x", RecordMeta("ds", 0), [KeyBlob(rid, b"", b"e", b"c")]), "items[0].keys.recipient"),
    ]
    for item, field in cases:
        with pytest.raises(ValueError) as caught:
            store.put_many([item])
        assert str(caught.value).startswith(field + ":"), (field, caught.value)
    assert store.get(b"short") is None and store.get_key(rid, b"") is None
    with pytest.raises(ValueError, match="^limit: "):
        store.list("ds", 0, 1, limit=0)
    with pytest.raises(ValueError, match="^prefix: "):
        S3VaultStore(client=None, bucket="b", prefix="../x")
