"""`cityledger charging charger add|list`: the chargers a node's CSMS lets connect (docs/CHARGING.md).

`charging tls-init` creates the city charging CA and the CSMS's server certificate (wss://, OCPP
security profile 2); `charging tls-issue` a charger's certificate (profile 3).

The registry is the home's charging/chargers.json; a running node's CSMS rereads it when a
charger it does not know (or with a new password) logs in. The OCPP basic-auth password is printed once and only its
salted hash is kept.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from .common import (
    HomeOption,
    JsonOption,
    NodeOption,
    PassphraseEnvOption,
    console,
    fail,
    keystore_folder,
    print_json,
    resolve_home,
)

app = typer.Typer(help="EV charging: the chargers this node's CSMS accepts, vehicles authorising with a CSMS.",
                  no_args_is_help=True)
# `charging simulate`'s bounds (each vehicle's set-up needs an AnonCreds credential: seconds).
MAX_SIM_CHARGERS = 100
MAX_SIM_VEHICLES = 50
MAX_SIM_SESSIONS = 10_000
MAX_SIM_READINGS = 100
SIM_DEPOSIT_MICRO = 50_000_000  # a simulated vehicle's new channel's deposit (50 credits)

charger_app = typer.Typer(help="Register and list chargers (OCPP security profile 1).", no_args_is_help=True)
app.add_typer(charger_app, name="charger")


def _home(home: Optional[Path]) -> Path:
    folder = resolve_home(home)
    if not (folder / "config.toml").exists():
        fail(f"--home: {folder} is not a node home (no config.toml); run `cityledger init` first")
    return folder


def _owner_address(text: str, home: Optional[Path]) -> str:
    """The owner as a city… address: given as one, as a keystore key name, or as a key file."""
    from ..core.types import address_to_str
    from ..sdk import to_address

    if text.startswith("city") or len(text) == 40:
        try:
            return address_to_str(to_address(text, "--owner"))
        except ValueError as exc:
            fail(str(exc))
    from ..sdk import Keystore, KeystoreError

    try:
        return Keystore(keystore_folder(home)).info(text).address
    except KeystoreError:
        pass
    path = Path(text).expanduser()
    if path.is_file():
        from ..node.home import load_key

        try:
            return address_to_str(load_key(path).address())
        except (ValueError, KeyError, OSError) as exc:
            fail(f"--owner: {path} is not a key file ({exc})")
    fail(f"--owner: expected an address (city…), a keystore key name or a key file, got {text[:80]!r}")
    return ""  # not reached: fail() exits


@charger_app.command("add")
def charger_add(charger_id: str = typer.Argument(..., help="OCPP identity: 1 to 48 of A-Z a-z 0-9 . _ : -"),
                owner: str = typer.Option(..., "--owner", help="Address (city…), keystore key name or key file"),
                home: Optional[Path] = HomeOption, as_json: bool = JsonOption) -> None:
    """Register a charger (or give it a new password); print its OCPP password once."""
    from ..node.charging import open_registry, registry_path
    from ..offchain.charging import RegistryError

    folder = _home(home)
    address = _owner_address(owner, home)
    try:
        password = open_registry(folder).add_charger(charger_id, address)
    except RegistryError as exc:
        fail(str(exc))
    if as_json:
        print_json({"charger_id": charger_id, "owner": address, "password": password,
                    "registry": str(registry_path(folder))})
        return
    console.print(f"charger [bold]{charger_id}[/] registered, owner {address}")
    console.print(f"OCPP basic-auth user: {charger_id}\nOCPP basic-auth password: {password}", highlight=False)
    console.print("The password is shown only now; only its hash is kept.")


@charger_app.command("list")
def charger_list(home: Optional[Path] = HomeOption, as_json: bool = JsonOption) -> None:
    """The registered chargers and their owners (never a password)."""
    from rich.table import Table

    from ..node.charging import open_registry

    chargers = open_registry(_home(home)).chargers()
    if as_json:
        print_json([{"charger_id": c.charger_id, "owner": c.owner} for c in chargers])
        return
    table = Table("charger id", "owner")
    for charger in chargers:
        table.add_row(charger.charger_id, charger.owner)
    console.print(table)


CaOption = typer.Option(None, "--ca", help="City charging CA certificate a wss:// CSMS must be certified by "
                                              "[default: the home's charging/tls/ca.pem]")


def _csms_url(csms: Optional[str], home: Optional[Path]) -> str:
    """The CSMS's base URL: given, or the home's [charging] host and port (wss:// once TLS is set)."""
    if csms:
        if not csms.startswith(("ws://", "wss://")):
            fail(f"--csms: expected ws://host:port or wss://host:port, got {csms[:80]!r}")
        return csms
    from ..node.home import load_config

    try:
        settings = load_config(_home(home)).charging
    except ValueError as exc:
        fail(str(exc))
    return f"{'wss' if settings.tls_cert else 'ws'}://{settings.host}:{settings.port}"


def _csms_ca(base: str, ca: Optional[Path], home: Optional[Path]) -> Optional[Path]:
    """The CA file a wss:// CSMS is checked against (--ca, else the home's); None for ws://."""
    if not base.startswith("wss://"):
        if ca is not None:
            fail(f"--ca: only for a wss:// CSMS, got {base[:80]!r}")
        return None
    from ..node.charging_tls import tls_folder

    path = ca if ca is not None else tls_folder(resolve_home(home)) / "ca.pem"
    if not path.is_file():
        fail(f"--ca: no CA certificate {path}; pass the city charging CA's ca.pem")
    return path


@app.command("tls-init")
def tls_init(hosts: Optional[list[str]] = typer.Option(None, "--host",
                                                       help="DNS name or IP address chargers dial (repeatable) "
                                                            "[default: 127.0.0.1 and localhost]"),
             client_certificates: bool = typer.Option(False, "--client-certificates",
                                                      help="Security profile 3: chargers log in with a certificate "
                                                           "from `charging tls-issue` instead of a password"),
             home: Optional[Path] = HomeOption, as_json: bool = JsonOption) -> None:
    """Create the city charging CA (once) and the CSMS's server certificate; the CSMS then serves wss://.

    Run again (to change the hosts) it keeps the CA, so chargers that trust it need nothing new.
    Restart the node for the CSMS to take the certificate up.
    """
    from ..node.charging_tls import DEFAULT_HOSTS, init_tls

    folder = _home(home)
    try:
        written = init_tls(folder, hosts or list(DEFAULT_HOSTS), client_certificates)
    except ValueError as exc:
        fail(str(exc))
    if as_json:
        print_json(written)
        return
    plain = {"highlight": False, "markup": False, "emoji": False, "soft_wrap": True}
    console.print(f"city charging CA (install on every charger): {written['ca']}", **plain)
    console.print(f"CA SHA-256 fingerprint: {written['fingerprint']}", **plain)
    console.print(f"server certificate {written['server_cert']} for {', '.join(hosts or DEFAULT_HOSTS)}", **plain)
    console.print("[charging] tls_cert and tls_key are set; restart the node to serve wss://", **plain)


@app.command("tls-issue")
def tls_issue(charger_id: str = typer.Argument(..., help="The registered charger's OCPP identity (the cert's CN)"),
              home: Optional[Path] = HomeOption, as_json: bool = JsonOption) -> None:
    """Security profile 3: a certificate from the city charging CA for one registered charger."""
    from ..node.charging import open_registry
    from ..node.charging_tls import issue_charger_certificate

    folder = _home(home)
    if open_registry(folder).get(charger_id) is None:
        fail(f"charger_id: {charger_id[:48]!r} is not registered; run `cityledger charging charger add` first")
    try:
        written = issue_charger_certificate(folder, charger_id)
    except ValueError as exc:
        fail(str(exc))
    if as_json:
        print_json(written)
        return
    console.print(f"charger {charger_id}: certificate {written['cert']}, key {written['key']} (install both, "
                  f"with the CA {written['ca']})", highlight=False, markup=False, emoji=False, soft_wrap=True)


@app.command("authorize")
def authorize(vehicle: str = typer.Option(..., "--vehicle", help="Keystore key of the vehicle (its device key)"),
              operator: str = typer.Option(..., "--operator", help="The charging operator's address (city…)"),
              deposit: Optional[int] = typer.Option(None, "--deposit", min=1,
                                                    help="Open a channel with this deposit if none is known"),
              channel: Optional[int] = typer.Option(None, "--channel", min=1, help="Use this open channel"),
              settle_delay: int = typer.Option(100, "--settle-delay", min=1, help="Blocks of a new channel's window"),
              charger: Optional[str] = typer.Option(None, "--charger", help="Then ask this charger to start"),
              evse: Optional[int] = typer.Option(None, "--evse", min=1, help="The charger's EVSE (1.6: connector)"),
              csms: Optional[str] = typer.Option(None, "--csms", help="CSMS URL [default: the home's [charging]]"),
              ca: Optional[Path] = CaOption,
              wallet: str = typer.Option("default", "--wallet", help="Wallet holding the vehicle's registration"),
              home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption,
              passphrase_env: Optional[str] = PassphraseEnvOption, as_json: bool = JsonOption) -> None:
    """The vehicle proves its device DID and registration to the operator's CSMS; prints its idToken.

    Without --channel, the channel the CSMS knows for this vehicle is reused; if it knows none and
    --deposit is given, a channel from the vehicle's account to the operator is opened first.
    """
    from ..sdk import AuthorizationRefused, WalletError, authorize_vehicle, open_channel
    from .identity_common import open_client, open_wallet
    from .payments import _address, _keystore_key, _submit

    key = _keystore_key(home, vehicle, passphrase_env, "--vehicle")
    payee = _address(operator, "--operator")
    url, client = open_client(node, home)
    base = _csms_url(csms, home)
    ca_file = _csms_ca(base, ca, home)
    with client:
        holder = open_wallet(home, wallet, passphrase_env, client)
        try:
            try:
                answer = authorize_vehicle(base, key, holder, client.ledger, operator, channel, charger, evse, ca_file)
            except AuthorizationRefused as refused:
                if refused.field != "channel_id" or channel is not None or deposit is None:
                    raise
                result = _submit(client, url, key, lambda chain_id, nonce: open_channel(
                    chain_id, key, nonce, payee, deposit, settle_delay), 60.0)
                opened = _opened_channel(result)
                answer = authorize_vehicle(base, key, holder, client.ledger, operator, opened, charger, evse, ca_file)
        except AuthorizationRefused as refused:
            fail(f"refused by the CSMS: {refused}")
        except WalletError as exc:
            fail(f"--wallet: {exc}")
        except OSError as exc:
            fail(f"--csms: cannot reach {base} ({exc})")
    if as_json:
        print_json({k: answer[k] for k in ("id_token", "channel_id", "deposit", "covered", "remote_start")
                    if k in answer})
        return
    console.print(f"idToken (type Central): [bold]{answer['id_token']}[/]", highlight=False)
    console.print(f"channel {answer['channel_id']}, deposit {answer['deposit']}, covered {answer['covered']}",
                  highlight=False)
    if "remote_start" in answer:
        console.print(f"remote start at {charger}: {answer['remote_start']}", highlight=False)


def _opened_channel(result) -> int:
    """The channel id a committed channel_open announced."""
    for event in result.result.events:
        if event.type == "payments_channel_opened":
            for attribute in event.attributes:
                if attribute.key == "channel_id":
                    return int(attribute.value)
    fail("channel: the ledger did not announce the opened channel")
    return 0  # not reached: fail() exits


@app.command("simulate")
def simulate(chargers: int = typer.Option(2, "--chargers", min=1, max=MAX_SIM_CHARGERS,
                                          help="Charge points (OCPP 2.0.1)"),
             vehicles: int = typer.Option(2, "--vehicles", min=1, max=MAX_SIM_VEHICLES,
                                          help="Vehicles (set up once each: seconds; reused by later runs)"),
             sessions: int = typer.Option(4, "--sessions", min=1, max=MAX_SIM_SESSIONS,
                                          help="Complete sessions in all"),
             readings: int = typer.Option(10, "--readings", min=1, max=MAX_SIM_READINGS,
                                          help="Meter values per session"),
             deposit: int = typer.Option(SIM_DEPOSIT_MICRO, "--deposit", min=1, help="A new channel's deposit (micro)"),
             record: Optional[Path] = typer.Option(None, "--record",
                                                   help="Write every meter reading and time sent (JSON)"),
             csms: Optional[str] = typer.Option(None, "--csms", help="CSMS URL [default: the home's [charging]]"),
             ca: Optional[Path] = CaOption,
             home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption, as_json: bool = JsonOption) -> None:
    """Drive complete charging sessions against a running node (`cityledger up`, charging enabled).

    Vehicles are set up as real ones (registered, bound, a registration credential, a spending
    policy, a channel), authorise at the CSMS, and pay each meter value with a voucher; chargers are
    ocpp-package charge points over WebSocket. The node's CSMS redeems the vouchers on chain.
    """
    from ..node.home import load_config
    from ..sdk import ApiError
    from .common import err_console, resolve_node_url

    folder = _home(home)
    try:
        config = load_config(folder)
    except ValueError as exc:
        fail(str(exc))
    if not config.charging.enabled:
        fail(f"[charging]: not enabled in {folder / 'config.toml'}; set enabled = true and restart the node")
    from ..core.types import address_to_str
    from ..node.home import load_key

    operator = address_to_str(load_key(folder / config.charging.operator_key).address())
    url, base = resolve_node_url(node, home), _csms_url(csms, home)
    ca_file = _csms_ca(base, ca, home)
    say = (err_console if as_json else console).print
    try:
        summary, run = _simulate(folder, url, (base, ca_file), operator, config.charging, chargers, vehicles,
                                 sessions, readings, deposit, say)
    except OSError as exc:
        fail(f"--node/--csms: cannot reach {url} or {base} ({exc})")
    except (RuntimeError, ApiError) as exc:
        fail(f"simulate: {exc}")
    if record is not None:
        record.write_text(json.dumps({"readings_wh": run.readings_wh, "times": run.times}) + "\n")
    _show_summary(summary, as_json)
    if not summary["balanced"]:
        raise typer.Exit(1)


def _simulate(home: Path, url: str, csms: tuple[str, Optional[Path]], operator: str, tariff: Any, chargers: int,
              vehicles: int, sessions: int, readings: int, deposit: int, say) -> tuple[dict, Any]:
    """Set the fleet up, drive the sessions with a progress bar, and summarise from the chain.

    `csms` is the CSMS's base URL and, for wss://, the CA file it is checked against.
    """
    import asyncio

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..sdk import AuthorizationRefused, IdentityClient, WalletError
    from ..tools import charging_simulate as sim
    from .common import err_console

    from ..offchain.charging.tls import client_context

    base, ca_file = csms
    tls = client_context(ca_file) if ca_file is not None else None
    with IdentityClient(url) as client, IdentityClient(url, token=sim.office_token(home)) as office:
        builder = sim.FleetBuilder(home, client, office, base, operator, deposit, say, ca_file)
        setup_height = client.status().height
        try:
            builder.publish()
            # Each channel gets what its share of the sessions can cost at most (topped up if short).
            need = -(-sessions // vehicles) * sim.session_bound_micro(tariff, readings)
            ready = builder.vehicles(vehicles, need)
        except (AuthorizationRefused, WalletError) as exc:
            fail(f"refused by the CSMS: {exc}")
        links = sim.register_chargers(home, chargers, operator)
        before, first_height = client.get_account(operator).balance, client.status().height
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[kwh]} kWh"), TextColumn("{task.fields[billed]} billed"),
                   TimeElapsedColumn())
        with Progress(*columns, console=err_console, transient=True) as bar:
            task = bar.add_task("sessions", total=sessions, kwh="0.0", billed="0")

            def shown(progress) -> None:
                bar.update(task, completed=progress.sessions, kwh=f"{progress.energy_wh / 1000:.1f}",
                           billed=f"{progress.billed_micro / 1e6:.2f}")

            try:
                run = asyncio.run(sim.drive(base, builder.chain_id, links, ready, sessions, readings, shown, tls))
            finally:
                builder.fleet.save()  # the vehicles' voucher nonces, even after a failure
        say("waiting for the CSMS's redeems to commit")
        summary = sim.summarize(client, operator, before, first_height, run, ready)
        # What setting the fleet up sent (none once it is cached): registrations, policies, opens, top-ups.
        summary["setup_onchain"] = sim.count_txs(client, setup_height + 1, first_height)
        return summary, run


def _show_summary(summary: dict, as_json: bool) -> None:
    """The run's figures: JSON, or a table and each channel's balance."""
    from rich.table import Table

    if as_json:
        print_json(summary)
        return
    table = Table("figure", "value")
    for key in ("sessions", "vehicles", "energy_kwh", "billed_micro", "operator_gain_micro", "balanced",
                "onchain_txs", "onchain_txs_per_session", "seconds", "sessions_per_s"):
        table.add_row(key, str(summary[key]))
    table.add_row("on-chain by kind", ", ".join(f"{k} {v}" for k, v in summary["onchain"].items()))
    table.add_row("set-up on chain", ", ".join(f"{k} {v}" for k, v in summary["setup_onchain"].items()))
    console.print(table)
    channels = Table("channel", "deposit", "redeemed", "balance")
    for channel_id, figures in summary["channels"].items():
        channels.add_row(channel_id, str(figures["deposit"]), str(figures["redeemed"]), str(figures["balance"]))
    console.print(channels)
