"""OCPP over TLS (security profiles 2 and 3): the CSMS on wss:// with certificates `charging tls-init` made.

Each test runs its own CSMS on a free loopback port with a real TLS context from a real home;
chargers are the ocpp package's charge points over real WebSockets. Timeouts only keep a broken
test from hanging.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import stat

import pytest
from cryptography import x509
from ocpp.v201 import call as call201
from typer.testing import CliRunner
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidMessage, InvalidStatus

from test_charging import GUARD_S, Station201, World, basic, event, until
from cityledger.cli.main import app
from cityledger.node.charging import ChargingService, open_registry, store_path
from cityledger.node.charging_tls import init_tls, issue_charger_certificate, open_tls_context, tls_folder
from cityledger.node.home import init_home, load_config, set_section
from cityledger.offchain.charging.csms import MAX_FRAME_BYTES
from cityledger.offchain.charging.tls import client_context, compute_fingerprint, load_certificate

runner = CliRunner()


def make_home(tmp_path, name: str = "home", client_certificates: bool = False):
    folder = tmp_path / name
    init_home(folder, chain_id="charging-tls-1", issuers=False)
    init_tls(folder, ["127.0.0.1", "localhost"], client_certificates)
    return folder


@pytest.fixture
def home(tmp_path):
    return make_home(tmp_path)


class TlsWorld(World):
    """test_charging's World (a charger CP-1, a vehicle with a channel) on wss:// with the home's certificate."""

    def __init__(self, home, **kwargs) -> None:
        super().__init__(**kwargs)
        self.tls = open_tls_context(home, load_config(home).charging)
        self.trust = client_context(tls_folder(home) / "ca.pem")

    async def __aenter__(self) -> "TlsWorld":
        self.port = await self.csms.start("127.0.0.1", 0, self.tls)
        return self

    @property
    def base(self) -> str:
        return f"wss://127.0.0.1:{self.port}"

    def vehicle(self, pay: bool = True):
        vehicle = super().vehicle(pay)
        vehicle.tls = self.trust
        return vehicle

    def charger(self, cls=None, subprotocol: str = "ocpp2.0.1", password: str | None = None, charger_id: str = "CP-1",
                trust: ssl.SSLContext | None = None):
        return connect(f"{self.base}/ocpp/{charger_id}", subprotocols=[subprotocol], ssl=trust or self.trust,
                       additional_headers=basic(charger_id, password or self.password), open_timeout=GUARD_S)


async def boot(ws) -> tuple[Station201, asyncio.Task, str]:
    """Start a 2.0.1 station on an open connection and boot it; (station, its loop, the boot status)."""
    station = Station201("CP-1", ws)
    loop = asyncio.create_task(station.start())
    answer = await station.call(call201.BootNotification(charging_station={"model": "M1", "vendor_name": "V"},
                                                         reason="PowerUp"))
    return station, loop, answer.status


def test_session_over_wss_with_the_generated_ca_is_billed_paid_and_receipted(home):
    async def scenario():
        async with TlsWorld(home) as world, world.vehicle() as vehicle, world.charger() as ws:
            cipher = ws.transport.get_extra_info("ssl_object")
            station, loop, status = await boot(ws)
            assert status == "Accepted"
            assert (await station.call(event("Started", 0, 10_000, 0, world.id_token))).id_token_info[
                "status"] == "Accepted"
            await station.call(event("Updated", 1, 12_000, 5))
            await until(world.owed_is_paid)
            await station.call(event("Ended", 2, 14_000, 10))
            receipt = await asyncio.wait_for(vehicle.receipts.get(), GUARD_S)
            loop.cancel()
            return cipher.version(), receipt, world.csms.final_voucher("tx-1")

    version, receipt, final = asyncio.run(scenario())
    assert version in ("TLSv1.2", "TLSv1.3")
    assert receipt.verify() and receipt.energy_wh == 4_000 and final.amount == receipt.cost_micro


def test_invalid_clients_are_refused_over_tls_untrusted_ca_plain_ws_wrong_password(home, tmp_path):
    stranger = client_context(tls_folder(make_home(tmp_path, "other-city")) / "ca.pem")

    async def scenario():
        async with TlsWorld(home) as world:
            with pytest.raises(ssl.SSLCertVerificationError):
                async with world.charger(trust=stranger):
                    pass
            with pytest.raises(ssl.SSLCertVerificationError):  # the system's CAs do not know the city CA
                async with connect(f"{world.base}/ocpp/CP-1", subprotocols=["ocpp2.0.1"], open_timeout=GUARD_S,
                                   additional_headers=basic("CP-1", world.password)):
                    pass
            with pytest.raises((InvalidMessage, ConnectionClosed, OSError)):
                async with connect(f"ws://127.0.0.1:{world.port}/ocpp/CP-1", subprotocols=["ocpp2.0.1"],
                                   additional_headers=basic("CP-1", world.password), open_timeout=GUARD_S):
                    pass
            with pytest.raises(InvalidStatus) as refused:
                async with world.charger(password="not-the-password"):
                    pass
            assert refused.value.response.status_code == 401
            async with world.charger() as ws:  # and the CSMS goes on serving a charger it should
                assert (await boot(ws))[2] == "Accepted"

    asyncio.run(scenario())


def client_hello() -> bytes:
    """The first flight of a real TLS client (its ClientHello records)."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ssl.create_default_context().wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


async def send_raw(port: int, payload: bytes, close: bool = True) -> bytes:
    """Write bytes on a raw TCP connection to the CSMS; what it answers before closing (or the guard)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    await writer.drain()
    if close:
        writer.write_eof()
    try:
        return await asyncio.wait_for(reader.read(65_536), 2)
    except (asyncio.TimeoutError, ConnectionError):
        return b""
    finally:
        writer.close()


def test_hostile_bytes_on_the_tls_port_are_dropped_and_the_csms_goes_on(home):
    hello = client_hello()

    async def scenario():
        async with TlsWorld(home) as world:
            await send_raw(world.port, b"GET /ocpp/CP-1 HTTP/1.1\r\nHost: x\r\n\r\n")  # plain HTTP
            await send_raw(world.port, bytes(range(256)) * 64)  # not a TLS record at all
            await send_raw(world.port, hello[: len(hello) // 2])  # a truncated ClientHello, then EOF
            await send_raw(world.port, hello[:7], close=False)  # a truncated one left hanging
            await send_raw(world.port, b"\x16\x03\x01\xff\xff" + b"\x01" * 70_000)  # a record over TLS's 16 KiB
            async with world.charger() as ws:  # an oversized first WebSocket frame is closed with 1009
                await ws.send("[" + "1," * MAX_FRAME_BYTES + "1]")
                with pytest.raises(ConnectionClosed) as closed:
                    await asyncio.wait_for(ws.recv(), GUARD_S)
                assert closed.value.rcvd.code == 1009
            async with world.charger() as ws:
                assert (await boot(ws))[2] == "Accepted"
                assert "CP-1" in world.csms.points

    asyncio.run(scenario())


def write_charging(home, **values) -> None:
    config = home / "config.toml"
    config.write_text(set_section(config.read_text(), "charging", values))


@pytest.mark.parametrize("name,value", [
    ("tls_cert", "/etc/ssl/certs/server.pem"),
    ("tls_cert", "../server.pem"),
    ("tls_key", "charging/../../server.key"),
    ("tls_client_ca", "/tmp/ca.pem"),
])
def test_invalid_tls_paths_are_refused_by_load_config_naming_the_field(home, name, value):
    write_charging(home, **{name: value})
    with pytest.raises(ValueError, match=f"charging.{name}: expected a PEM file inside the home"):
        load_config(home)


def test_invalid_tls_pairs_are_refused_by_load_config(tmp_path):
    folder = tmp_path / "home"
    init_home(folder, chain_id="charging-tls-1", issuers=False)
    write_charging(folder, tls_cert="charging/tls/server.pem")
    with pytest.raises(ValueError, match="charging.tls_key: expected tls_cert and tls_key both set"):
        load_config(folder)
    write_charging(folder, tls_cert="", tls_client_ca="charging/tls/ca.pem")
    with pytest.raises(ValueError, match="charging.tls_client_ca: client certificates"):
        load_config(folder)


def break_tls_file(home, case: str) -> None:
    """Point [charging] at a TLS file that exists only on paper, or holds the wrong key, or leaves the home."""
    outside, link = home.parent / "elsewhere.key", home / "charging/tls/outside.key"
    if case == "missing":
        write_charging(home, tls_cert="charging/tls/missing.pem")
    elif case == "mismatched":
        write_charging(home, tls_key="charging/tls/ca.key")  # the CA's key, not the server certificate's
    elif case == "not a key":
        write_charging(home, tls_key="charging/tls/ca.pem")
    else:
        if case == "symlink out":
            outside.write_bytes((home / "charging/tls/server.key").read_bytes())
        link.symlink_to(outside)  # "dangling": to nothing
        write_charging(home, tls_key="charging/tls/outside.key")


@pytest.mark.parametrize("case,field,message", [
    ("missing", "tls_cert", "no file"),
    ("mismatched", "tls_key", "is not the key of"),
    ("not a key", "tls_key", "is not the key of"),
    ("symlink out", "tls_key", "leads outside the home"),
    ("dangling", "tls_key", "no file"),
])
def test_invalid_tls_files_are_refused_at_start_naming_the_field_and_nothing_starts(home, case, field, message):
    break_tls_file(home, case)
    config = load_config(home)
    with pytest.raises(ValueError, match=f"charging.{field}: .*{message}"):
        ChargingService(config)
    assert not store_path(home).exists()  # refused before the CSMS's store was opened


def test_tls_init_writes_keys_600_and_a_certificate_ssl_accepts_for_the_requested_hosts(tmp_path):
    folder = tmp_path / "home"
    init_home(folder, chain_id="charging-tls-1", issuers=False)
    args = ["charging", "tls-init", "--home", str(folder), "--host", "csms.city.example", "--host", "10.1.2.3",
            "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    written = json.loads(result.output)
    tls = tls_folder(folder)
    assert stat.S_IMODE(tls.stat().st_mode) == 0o700
    for name in ("ca.key", "ca.pem", "server.key", "server.pem"):
        assert stat.S_IMODE((tls / name).stat().st_mode) == 0o600, name
    cert = load_certificate(tls / "server.pem")
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["csms.city.example"]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["10.1.2.3"]
    assert written["fingerprint"] == compute_fingerprint(load_certificate(tls / "ca.pem"))
    settings = load_config(folder).charging
    assert (settings.tls_cert, settings.tls_key) == ("charging/tls/server.pem", "charging/tls/server.key")
    assert handshake(folder, "csms.city.example") == "ok"  # ssl accepts it for its name...
    assert "mismatch" in handshake(folder, "other.example")  # ...and for no other

    again = runner.invoke(app, ["charging", "tls-init", "--home", str(folder)])
    assert again.exit_code == 0, again.output
    assert f"CA SHA-256 fingerprint: {written['fingerprint']}\n" in again.output  # the CA is kept
    assert f"{tls / 'ca.pem'}\n" in again.output
    assert load_certificate(tls / "server.pem").serial_number != cert.serial_number  # the server cert is new
    assert handshake(folder, "localhost") == "ok"

    before = {path: path.read_bytes() for path in tls.iterdir()}
    config = (folder / "config.toml").read_text()
    bad = runner.invoke(app, ["charging", "tls-init", "--home", str(folder), "--host", "bad host!"])
    assert bad.exit_code != 0 and "--host" in bad.output
    assert {path: path.read_bytes() for path in tls.iterdir()} == before
    assert (folder / "config.toml").read_text() == config


def handshake(home, server_name: str) -> str:
    """A TLS handshake to a CSMS serving the home's certificate, checking `server_name`; 'ok' or the error."""
    async def scenario():
        tls = open_tls_context(home, load_config(home).charging)
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=tls)
        port = server.sockets[0].getsockname()[1]
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port, server_hostname=server_name,
                                                      ssl=client_context(tls_folder(home) / "ca.pem"))
            writer.close()
            return "ok"
        except ssl.SSLCertVerificationError as exc:
            return exc.verify_message
        finally:
            server.close()

    return asyncio.run(scenario())


def test_profile3_charger_certificates_with_the_charger_id_as_cn(tmp_path):
    home = make_home(tmp_path, client_certificates=True)
    files = issue_charger_certificate(home, "CP-1")
    assert stat.S_IMODE((tls_folder(home) / "chargers" / "CP-1.key").stat().st_mode) == 0o600
    issue_charger_certificate(home, "CP-2")

    def as_charger(name: str) -> ssl.SSLContext:
        return client_context(tls_folder(home) / "ca.pem", tls_folder(home) / "chargers" / f"{name}.pem",
                              tls_folder(home) / "chargers" / f"{name}.key")

    async def scenario():
        async with TlsWorld(home) as world, world.vehicle() as vehicle:
            async with world.charger(password="no password needed", trust=as_charger("CP-1")) as ws:
                assert (await boot(ws))[2] == "Accepted"
            for trust, status in ((as_charger("CP-2"), 403), (world.trust, 401)):
                with pytest.raises(InvalidStatus) as refused:
                    async with world.charger(trust=trust):
                        pass
                assert refused.value.response.status_code == status
            assert vehicle.refusals == []  # vehicles share the port without certificates

    assert files["cert"].endswith("CP-1.pem")
    asyncio.run(scenario())


def test_profile3_certificate_of_another_ca_fails_the_handshake(tmp_path):
    home = make_home(tmp_path, client_certificates=True)
    other = make_home(tmp_path, "other-city")
    stranger = issue_charger_certificate(other, "CP-1")
    trust = client_context(tls_folder(home) / "ca.pem", stranger["cert"], stranger["key"])

    async def scenario():
        async with TlsWorld(home) as world:
            with pytest.raises((ssl.SSLError, ConnectionError, InvalidMessage, ConnectionClosed)):
                async with world.charger(trust=trust) as ws:
                    await boot(ws)

    asyncio.run(scenario())


def test_tls_issue_refuses_an_unregistered_charger(tmp_path):
    home = make_home(tmp_path)
    result = runner.invoke(app, ["charging", "tls-issue", "CP-9", "--home", str(home)])
    assert result.exit_code != 0 and "not registered" in result.output
    assert not (tls_folder(home) / "chargers").exists()


def test_tls_init_adds_the_settings_to_an_older_config_without_them(tmp_path):
    folder = tmp_path / "home"
    init_home(folder, chain_id="charging-tls-1", issuers=False)
    config = folder / "config.toml"
    config.write_text("".join(line for line in config.read_text().splitlines(keepends=True)
                              if not line.startswith("tls_")))
    init_tls(folder, ["127.0.0.1"])
    settings = load_config(folder)
    assert settings.charging.tls_cert == "charging/tls/server.pem" and settings.passports.anchor_key == "node_key.json"


def test_node_charging_service_serves_wss_from_the_home_config(home):
    password = open_registry(home).add_charger("CP-1", "operator-address")
    service = ChargingService(load_config(home))
    port = service.start()

    async def scenario():
        trust = client_context(tls_folder(home) / "ca.pem")
        async with connect(f"wss://localhost:{port}/ocpp/CP-1", subprotocols=["ocpp2.0.1"], ssl=trust,
                           additional_headers=basic("CP-1", password), open_timeout=GUARD_S) as ws:
            return (await boot(ws))[2]

    try:
        assert service.scheme == "wss" and asyncio.run(scenario()) == "Accepted"
    finally:
        service.stop()
