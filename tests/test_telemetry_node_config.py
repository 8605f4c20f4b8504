"""A node's [telemetry] settings for the gateway and the vault service: each bad value is named, by
load_config or when the node is assembled, before anything starts; `cityledger up` says it in one line."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from cityledger.cli.main import app
from cityledger.core.keys import PrivateKey
from cityledger.modules.identity import compute_did
from cityledger.node.home import init_home, load_config, write_key_file
from cityledger.node.runner import Node

DID = compute_did(PrivateKey(1, b"\x81" * 32).signer(), b"")
GOOD = {"gateway_did": f'"{DID}"', "gateway_key": '"keys/gw.json"', "vault_service_did": f'"{DID}"',
        "vault_service_key": '"keys/gw.json"'}


@pytest.fixture
def home(tmp_path):
    init_home(tmp_path, members=1, issuers=False)
    write_key_file(tmp_path / "keys" / "gw.json", PrivateKey(1, b"\x81" * 32), "gateway")
    return tmp_path


def _set(home, **values: str) -> None:
    text = (home / "config.toml").read_text()
    head, tail = text.split("[telemetry]\n", 1)
    tail = tail[tail.index("\n["):]
    body = "".join(f"{name} = {value}\n" for name, value in values.items())
    (home / "config.toml").write_text(head + "[telemetry]\nenabled = true\n" + body + tail)


@pytest.mark.parametrize("name, value", [
    ("gateway_did", '""'), ("gateway_did", '"did:city:not base58 0OIl"'), ("vault_service_did", '"city00"'),
    ("gateway_key", '""'), ("gateway_key", '"/etc/passwd"'), ("gateway_key", '"../outside.json"'),
    ("vault_service_key", '"keys/missing.json"'),
])
def test_a_bad_gateway_or_vault_service_setting_is_named_before_the_node_starts(home, name, value):
    _set(home, **(GOOD | {name: value}))
    with pytest.raises(ValueError, match=f"telemetry.{name}"):
        Node(load_config(home))


@pytest.mark.parametrize("name, value", [("gateway_did", "5"), ("vault_key", '"x"')])
def test_a_wrong_type_or_unknown_setting_is_named_by_load_config(home, name, value):
    _set(home, **(GOOD | {name: value}))
    with pytest.raises(ValueError, match=f"telemetry.{name}"):
        load_config(home)


def test_a_node_with_telemetry_off_has_no_vault_service(home):
    node = Node(load_config(home))
    try:
        assert node.telemetry is None and node.vaults is None
    finally:
        node.stop()


def test_up_answers_a_bad_setting_in_one_line(home):
    _set(home, **(GOOD | {"vault_service_key": '"keys/missing.json"'}))
    result = CliRunner().invoke(app, ["up", "--home", str(home)])
    assert result.exit_code != 0 and "telemetry.vault_service_key" in result.output
    assert "Traceback" not in result.output


def _tree(home) -> dict:
    return {str(p.relative_to(home)): p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("value", ["0", "-1", "33", "2.5", '"2"', "true"])
def test_a_bad_gateways_value_is_named_and_changes_nothing(home, value):
    _set(home, **(GOOD | {"gateways": value}))
    before = _tree(home)
    with pytest.raises(ValueError, match="telemetry.gateways"):
        load_config(home)
    result = CliRunner().invoke(app, ["up", "--home", str(home)])
    assert result.exit_code != 0 and "telemetry.gateways" in result.output and "Traceback" not in result.output
    assert _tree(home) == before  # no telemetry folder, no shard folder, nothing rewritten


def test_gateways_defaults_to_one_and_takes_the_maximum(home):
    from cityledger.offchain.telemetry.shards import MAX_SHARD_PROCESSES

    _set(home, **GOOD)
    assert load_config(home).telemetry.gateways == 1
    _set(home, **(GOOD | {"gateways": str(MAX_SHARD_PROCESSES)}))
    assert load_config(home).telemetry.gateways == MAX_SHARD_PROCESSES
