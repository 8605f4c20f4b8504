"""The CSMS a node hosts: the [charging] section of config.toml, and a real charger booting against it."""

from __future__ import annotations

import asyncio
import base64

import pytest
from ocpp.v201 import ChargePoint as Cp201
from ocpp.v201 import call as call201
from websockets.asyncio.client import connect

from cityledger.node.charging import open_registry, registry_path
from cityledger.node.home import ChargingConfig, init_home, load_config
from cityledger.node.runner import Node

GUARD_S = 10  # only to keep a broken test from hanging


def _set_charging(home, text: str) -> None:
    """Replace the [charging] section of the home's config.toml with `text`."""
    path = home / "config.toml"
    head = path.read_text().split("[charging]")[0]
    path.write_text(head + "[charging]\n" + text + "\n")


@pytest.fixture
def home(tmp_path):
    folder = tmp_path / "home"
    init_home(folder, chain_id="charging-city-1", issuers=False)
    return folder


def test_charging_is_off_by_default_with_the_documented_settings(home):
    config = load_config(home)
    assert config.charging == ChargingConfig()
    assert (config.charging.enabled, config.charging.host, config.charging.port) == (False, "127.0.0.1", 9000)
    assert config.charging.per_kwh_micro == 300_000
    assert config.charging_path == home / "charging"


@pytest.mark.parametrize("text, setting", [
    ("enabled = 1", "charging.enabled"),
    ("port = 70000", "charging.port"),
    ("port = -1", "charging.port"),
    ("host = ''", "charging.host"),
    ("per_kwh_micro = 1.5", "charging.per_kwh_micro"),
    ("per_minute_micro = 10000000000000", "charging.per_minute_micro"),
    ("operator_key = '../elsewhere.json'", "charging.operator_key"),
    ("tariff = 3", "charging.tariff"),
    ("session_timeout_s = 10", "charging.session_timeout_s"),
    ("session_timeout_s = 99999999", "charging.session_timeout_s"),
    ("store_sync = 'sometimes'", "charging.store_sync"),
])
def test_bad_charging_settings_are_refused_naming_the_setting(home, text, setting):
    _set_charging(home, text)
    with pytest.raises(ValueError, match=setting.replace(".", r"\.")):
        load_config(home)


def test_missing_operator_key_is_refused_before_anything_starts(home):
    _set_charging(home, "enabled = true\nport = 0\noperator_key = 'keys/nobody.json'")
    with pytest.raises(ValueError, match=r"charging\.operator_key"):
        Node(load_config(home))


def test_disabled_charging_starts_no_csms(home):
    node = Node(load_config(home))
    try:
        assert node.charging is None
    finally:
        node.store.close()


@pytest.mark.slow
def test_node_with_charging_serves_a_real_charger_and_stops_cleanly(home):
    _set_charging(home, "enabled = true\nport = 0\nper_kwh_micro = 250000")
    password = open_registry(home).add_charger("CP-7", "operator")
    assert registry_path(home).exists() and password not in registry_path(home).read_text()
    node = Node(load_config(home))
    node.start()
    try:
        port = node.charging.port
        assert port and node.charging.csms.tariff.per_kwh_micro == 250_000
        status, refused = asyncio.run(_boot(port, "CP-7", password))
        assert status == "Accepted"
        assert refused == 401
        # A charger added by the CLI while the node runs is accepted without a restart.
        later = open_registry(home).add_charger("CP-8", "operator")
        assert asyncio.run(_boot(port, "CP-8", later)) == ("Accepted", 401)
    finally:
        node.stop()
    assert node.charging._loop is None and not node.charging._thread.is_alive()
    with pytest.raises(OSError):
        asyncio.run(_boot(port, "CP-7", password))


async def _boot(port: int, charger_id: str, password: str) -> tuple[str, int | None]:
    """Boot a 2.0.1 charge point over a real WebSocket; then try a wrong password; return both answers."""
    from websockets.exceptions import InvalidStatus

    auth = base64.b64encode(f"{charger_id}:{password}".encode()).decode()
    url = f"ws://127.0.0.1:{port}/ocpp/{charger_id}"
    async with connect(url, subprotocols=["ocpp2.0.1"], additional_headers={"Authorization": f"Basic {auth}"},
                       open_timeout=GUARD_S) as ws:
        station = Cp201(charger_id, ws)
        loop = asyncio.create_task(station.start())
        boot = await asyncio.wait_for(station.call(call201.BootNotification(
            charging_station={"model": "M1", "vendor_name": "V"}, reason="PowerUp")), GUARD_S)
        loop.cancel()
    wrong = base64.b64encode(f"{charger_id}:not-{password}".encode()).decode()
    try:
        async with connect(url, subprotocols=["ocpp2.0.1"], additional_headers={"Authorization": f"Basic {wrong}"},
                           open_timeout=GUARD_S):
            return boot.status, None
    except InvalidStatus as exc:
        return boot.status, exc.response.status_code


def test_registries_sharing_a_file_see_each_others_chargers(home):
    cli_side, csms_side = open_registry(home), open_registry(home)
    first = cli_side.add_charger("CP-A", "operator")
    assert csms_side.is_valid_login("CP-A", first)
    second = csms_side.add_charger("CP-B", "operator")
    assert [c.charger_id for c in open_registry(home).chargers()] == ["CP-A", "CP-B"]
    assert cli_side.is_valid_login("CP-B", second) and not cli_side.is_valid_login("CP-B", first)


@pytest.mark.slow
def test_node_csms_settles_an_idle_session_on_chain_and_keeps_its_state(home):
    """The node's own settle: an idle session's newest voucher redeemed through the node's engine."""
    import time
    from pathlib import Path

    from test_charging import TARIFF, Station201, at, energy
    from cityledger.modules.payments import OpenChannel, get_channel
    from cityledger.modules.payments.handlers import get_counter
    from cityledger.modules.payments.keys import NEXT_CHANNEL_ID_KEY
    from cityledger.node.charging import store_path
    from cityledger.node.home import load_key
    from cityledger.offchain.charging import ChannelTerms, VehicleClient, compute_cost_micro
    from cityledger.offchain.charging.expiry import close_idle
    from cityledger.offchain.identity.ledger import NodeLedger

    _set_charging(home, "enabled = true\nport = 0\nper_kwh_micro = 300000\nper_minute_micro = 10000\n"
                        "per_session_micro = 50000\nsession_timeout_s = 60")
    password = open_registry(home).add_charger("CP-1", "operator")
    payer = load_key(sorted(Path(home, "keys").glob("*.json"))[0])
    node = Node(load_config(home))
    node.start()
    try:
        operator = node.charging.csms.operator_key
        NodeLedger(node).send([payer], [OpenChannel(operator.address(), 10_000_000, 5, payer.public_key)]) \
            .raise_for_error()
        channel_id = get_counter(node.store, NEXT_CHANNEL_ID_KEY)
        csms, loop = node.charging.csms, node.charging._loop
        terms = ChannelTerms("charging-city-1", channel_id, payer.public_key, 10_000_000)
        token = asyncio.run_coroutine_threadsafe(_call(csms.authorize_vehicle, terms), loop).result(GUARD_S)

        async def session():
            base = f"ws://127.0.0.1:{node.charging.port}"
            auth = base64.b64encode(f"CP-1:{password}".encode()).decode()
            async with VehicleClient(base, token, payer, "charging-city-1", channel_id) as vehicle, \
                    connect(f"{base}/ocpp/CP-1", subprotocols=["ocpp2.0.1"],
                            additional_headers={"Authorization": f"Basic {auth}"}) as ws:
                station = Station201("CP-1", ws)
                task = asyncio.create_task(station.start())
                for seq, (kind, wh, minute) in enumerate([("Started", 0, 0), ("Updated", 2_000, 10)]):
                    await station.call(call201.TransactionEvent(
                        event_type=kind, timestamp=at(minute), trigger_reason="MeterValuePeriodic", seq_no=seq,
                        transaction_info={"transaction_id": "tx-1"}, meter_value=energy(wh, minute),
                        id_token={"id_token": token, "type": "Central"} if kind == "Started" else None))
                    async with asyncio.timeout(GUARD_S):
                        while "tx-1" not in csms.sessions or csms.unpaid_micro(csms.sessions["tx-1"]) \
                                or len(vehicle.costs) < seq + 1:
                            await asyncio.sleep(0.01)
                task.cancel()

        asyncio.run(session())
        closed = asyncio.run_coroutine_threadsafe(close_idle(csms, time.time() + 61), loop).result(GUARD_S * 6)
        assert [s.session_id for s in closed] == ["tx-1"]
        bill = compute_cost_micro(TARIFF, 2_000, 10 * 60)
        assert get_channel(node.store, channel_id).redeemed == bill
    finally:
        node.stop()
    assert store_path(home).exists()
    restarted = Node(load_config(home))
    try:
        # Paid in full and redeemed: the session is forgotten (store included), the channel's note kept.
        assert "tx-1" not in restarted.charging.csms.sessions
        assert restarted.charging.csms.books[token].terms.redeemed == bill
    finally:
        restarted.charging.store.close()
        restarted.passports.close()
        restarted.store.close()


async def _call(function, *args):
    """Run a plain call on the CSMS's own loop (its state belongs to that thread)."""
    return function(*args)
