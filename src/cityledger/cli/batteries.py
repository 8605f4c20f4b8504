"""`cityledger battery import|export`: Tractus-X BatteryPass documents in and out of the passport service.

    cityledger battery import --file doc.json --as maker [--battery <device DID>]
    cityledger verifier request --type battery-legitimate-interest --reveal holder_did > request.json
    cityledger credential present --request request.json --out presentation.json
    cityledger battery export <passport id> --tier legitimate --request request.json --presentation presentation.json
    cityledger battery anchor-log <passport id> --as maker
    cityledger battery ageing --chemistry nmc --temperature 25        (offline, PyBaMM: the `sim` extra)
    cityledger battery simulate --batteries N --days D --as maker    (BMS reports through POST /passports/reports)

Import validates the document here, stores it through the node's API (signed by the operator DID's
controller key), then anchors the tier hashes on chain in one transaction: RegisterPassport for a
passport the chain does not know yet (it needs the battery's device DID), else UpdateDocument for
each tier whose latest hash changed.

anchor-log reads the access log's head through the API (as the passport's operator, signed) and
anchors it on chain (AnchorAccessLog), after the passport's last anchored head.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from ..tools.ageing import MAX_CYCLES
from .common import HomeOption, JsonOption, NodeOption, PassphraseEnvOption, console, fail, node_errors, print_json
from .identity_common import emit_message, load_keys, open_client, read_message, send_and_wait

app = typer.Typer(help="Battery passports: import and export Tractus-X BatteryPass documents.",
                  no_args_is_help=True)


def _load_document(path: Path) -> dict[str, Any]:
    """A BatteryPass document from a file, validated; fail listing every schema error with its JSON path."""
    from ..offchain.passport import PassportError, load_document, validate_document

    try:
        document = load_document(path.read_bytes())
    except OSError as exc:
        fail(f"--file: cannot read {path} ({exc.strerror})")
    except PassportError as exc:
        fail(f"--file: {exc}")
    issues = validate_document(document)
    if issues:
        fail("--file: the document fails the BatteryPass schema:\n" +
             "\n".join(f"  {issue.path}: {issue.message}" for issue in issues))
    return document


def compute_anchor_messages(record: dict | None, operator: str, passport_id: str, id_dmc: str,
                            battery: Optional[str], latest: list) -> list:
    """The batteries messages that bring the chain's tier hashes up to the service's latest ones."""
    from ..modules.batteries import RegisterPassport, UpdateDocument

    hashes = {item.tier: bytes.fromhex(item.hash) for item in latest}
    if record is None:
        if not battery:
            fail("--battery: the passport is not on chain yet; name the battery's device DID to register it")
        return [RegisterPassport(operator, passport_id, id_dmc, battery, hashes["public"], hashes["legitimate"],
                                 hashes["authority"])]
    messages = []
    for tier in sorted(hashes):
        anchored = record["documents"][tier]
        if not anchored or anchored[-1]["hash"] != hashes[tier].hex():
            messages.append(UpdateDocument(operator, passport_id, tier, len(anchored) + 1, hashes[tier]))
    return messages


@app.command("import")
def battery_import(file: Path = typer.Option(..., "--file", help="A Tractus-X BatteryPass 6.1.0 JSON document"),
                   key_name: str = typer.Option(..., "--as", help="Keystore key controlling the operator's DID"),
                   operator: Optional[str] = typer.Option(None, "--operator",
                                                          help="[default: the DID the key generates]"),
                   battery: Optional[str] = typer.Option(None, "--battery",
                                                         help="The battery's device DID (first import only)"),
                   home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption,
                   passphrase_env: Optional[str] = PassphraseEnvOption, as_json: bool = JsonOption) -> None:
    """Validate a document, store it in the node's passport service and anchor its tier hashes on chain."""
    from ..modules.identity import compute_did
    from ..offchain.passport.store import canonical_passport_id
    from ..sdk import ApiError
    from ..sdk.passports import sign_put

    document = _load_document(file)
    passport_id = canonical_passport_id(document["metadata"]["passportIdentifier"])
    (key,) = load_keys(home, [key_name], passphrase_env)
    operator = operator or compute_did(key.signer(), b"")
    url, client = open_client(node, home)
    with node_errors(url), client:
        chain_id = client.status().chain_id
        try:
            base = client.get_passport(passport_id).base
        except ApiError as exc:
            if exc.status != 404:
                raise
            base = 0
        stored = client.put_passport(passport_id, sign_put(chain_id, [key], operator, base, document))
        try:
            record = client.query("batteries", "passport", id=passport_id)
        except ApiError as exc:
            if exc.status != 404:
                raise
            record = None
        messages = compute_anchor_messages(record, operator, passport_id, document["identification"]["idDmc"],
                                           battery, stored.latest)
        height = send_and_wait(client, [key], messages).height if messages else None
    summary = {"passport": passport_id, "written": [w.tier for w in stored.written], "anchored_at": height,
               "hashes": {item.tier: item.hash for item in stored.latest}}
    if as_json:
        print_json(summary)
        return
    console.print(f"passport [bold]{passport_id}[/]: stored {summary['written'] or 'no new version'}, "
                  f"anchored at height {height if height is not None else '(already anchored)'}", highlight=False)


@app.command("export")
def battery_export(passport_id: str = typer.Argument(..., help="Passport id (UUID)"),
                   tier: str = typer.Option("public", "--tier", help="public, legitimate or authority"),
                   request_file: Optional[str] = typer.Option(None, "--request",
                                                              help="The node verifier's request (restricted tiers)"),
                   presentation_file: Optional[str] = typer.Option(None, "--presentation",
                                                                   help="Your presentation for that request"),
                   out: Optional[Path] = typer.Option(None, "--out", help="Write the document here"),
                   home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption) -> None:
    """The document at a tier (public to anyone; the others against a presentation of their credential)."""
    import json

    from ..sdk.passports import read_body

    if tier not in ("public", "legitimate", "authority"):
        fail(f"--tier: expected public, legitimate or authority, got {tier!r}")
    if tier != "public" and not (request_file and presentation_file):
        fail(f"--presentation: the {tier} tier needs --request and --presentation "
             "(cityledger verifier request / credential present)")
    url, client = open_client(node, home)
    with node_errors(url), client:
        if tier == "public":
            answer = client.get_passport(passport_id)
        else:
            request = read_message(request_file, "--request")
            presentation = read_message(presentation_file, "--presentation")
            text = presentation if isinstance(presentation, str) else json.dumps(presentation)
            answer = client.read_passport(passport_id, read_body(tier, request, text))
    emit_message(answer.document, out)


def _reader_key(home: Optional[Path], key_name: str, passphrase_env: Optional[str], reader: Optional[str]):
    """The keystore key that reads a passport's log, and the reader it speaks for (default: its own DID)."""
    from ..modules.identity import compute_did

    (key,) = load_keys(home, [key_name], passphrase_env)
    return key, reader or compute_did(key.signer(), b"")


def _log_auth(client, key, reader: str, passport_id: str) -> dict:
    """The signed query parameters of a log or alerts read, at the node's current height."""
    from ..sdk.passports import sign_log_read

    status = client.status()
    return sign_log_read(status.chain_id, [key], reader, passport_id, status.height)


@app.command("anchor-log")
def battery_anchor_log(passport_id: str = typer.Argument(..., help="Passport id (UUID)"),
                       key_name: str = typer.Option(..., "--as", help="Keystore key controlling the operator's DID"),
                       operator: Optional[str] = typer.Option(None, "--operator",
                                                              help="[default: the DID the key generates]"),
                       home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption,
                       passphrase_env: Optional[str] = PassphraseEnvOption, as_json: bool = JsonOption) -> None:
    """Anchor the passport service's access-log head on chain, after the passport's last anchored head."""
    from ..modules.batteries import ZERO_HEAD, AnchorAccessLog

    key, operator = _reader_key(home, key_name, passphrase_env, operator)
    url, client = open_client(node, home)
    with node_errors(url), client:
        log = client.get_passport_log(passport_id, _log_auth(client, key, operator, passport_id))
        anchored = client.query("batteries", "access_log", id=log.passport_id)
        height = None
        if log.head_seq > anchored["count"]:
            previous = bytes.fromhex(anchored["head"]) if anchored["head"] else ZERO_HEAD
            message = AnchorAccessLog(operator, log.passport_id, bytes.fromhex(log.head_hash), log.head_seq, previous)
            height = send_and_wait(client, [key], [message]).height
    summary = {"passport": log.passport_id, "head": log.head_hash, "count": log.head_seq, "anchored_at": height}
    if as_json:
        print_json(summary)
        return
    console.print(f"passport [bold]{log.passport_id}[/]: log head {log.head_hash} after {log.head_seq} entries, "
                  f"{f'anchored at height {height}' if height is not None else 'already anchored'}", highlight=False)


WASTE_LISTS = ("stage", "second-life", "awaiting-recycling")


@app.command("waste")
def battery_waste(stage: Optional[str] = typer.Option(None, "--stage", help="List the passports at this stage"),
                  second_life: bool = typer.Option(False, "--second-life", help="List the batteries in second life"),
                  awaiting: bool = typer.Option(False, "--awaiting-recycling", help="List the collected batteries"),
                  after: Optional[str] = typer.Option(None, "--after", help="Page on after this passport id"),
                  home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption,
                  as_json: bool = JsonOption) -> None:
    """The city's battery-waste picture: counts by stage, or one list (by stage, second life, awaiting recycling)."""
    if sum((stage is not None, second_life, awaiting)) > 1:
        fail("--stage, --second-life, --awaiting-recycling: choose one")
    paging = {"after": after} if after else {}
    url, client = open_client(node, home)
    with node_errors(url), client:
        if stage is not None:
            answer = client.query("batteries", "by_stage", stage=stage, **paging)
        elif second_life:
            answer = client.query("batteries", "second_life", **paging)
        elif awaiting:
            answer = client.query("batteries", "awaiting_recycling", **paging)
        else:
            answer = client.query("batteries", "stages")
    if as_json:
        print_json(answer)
    elif "stages" in answer:
        for name, count in answer["stages"].items():
            console.print(f"{name:18} {count}", highlight=False)
    else:
        for passport in answer["passports"]:
            console.print(passport, highlight=False)
        if answer["next"]:
            console.print(f"(more: --after {answer['next']})", highlight=False)


@app.command("recycler")
def battery_recycler(did: str = typer.Argument(..., help="The recycler's DID"),
                     year: Optional[int] = typer.Option(None, "--year", help="Only that calendar year's batches"),
                     home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption,
                     as_json: bool = JsonOption) -> None:
    """A recycler's recovered material against Annex XII's targets (all years, or one)."""
    args = {"did": did} if year is None else {"did": did, "year": year}
    url, client = open_client(node, home)
    with node_errors(url), client:
        answer = client.query("batteries", "recycler", **args)
    if as_json:
        print_json(answer)
        return
    console.print(f"{did} {answer['year'] or 'all years'}: {answer['batches']} batches, {answer['batteries']} "
                  f"batteries, {answer['input_mass_g']} g in", highlight=False)
    for element, rate in answer["material_recovery"].items():
        verdicts = ", ".join(f"{t['per_mille'] / 10:g} % by {t['by']}: {_met(t['met'])}" for t in rate["targets"])
        console.print(f"  {element}: {rate['per_mille'] if rate['per_mille'] is not None else '-'} ‰ ({verdicts})",
                      highlight=False)


def _met(met: Optional[bool]) -> str:
    return "n/a" if met is None else "met" if met else "not met"


@app.command("alerts")
def battery_alerts(passport_id: str = typer.Argument(..., help="Passport id (UUID)"),
                   key_name: str = typer.Option(..., "--as", help="Keystore key: the operator's controller or the "
                                                                  "battery owner's key"),
                   reader: Optional[str] = typer.Option(None, "--reader", help="[default: the DID the key generates]"),
                   home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption,
                   passphrase_env: Optional[str] = PassphraseEnvOption, as_json: bool = JsonOption) -> None:
    """End-of-first-life alerts of a passport (SOCE at or below 80 %), to its operator or its battery's owner."""
    key, reader = _reader_key(home, key_name, passphrase_env, reader)
    url, client = open_client(node, home)
    with node_errors(url), client:
        answer = client.get_passport_alerts(passport_id, _log_auth(client, key, reader, passport_id))
    if as_json:
        print_json(answer)
        return
    for alert in answer.alerts:
        console.print(f"report {alert.sequence}: at or below {answer.threshold_percent} % (batch {alert.batch}, "
                      f"height {alert.height})", highlight=False)


@app.command("verify-log")
def battery_verify_log(passport_id: str = typer.Argument(..., help="Passport id (UUID)"),
                       key_name: str = typer.Option(..., "--as", help="Keystore key: the operator's controller or "
                                                                      "the battery owner's key"),
                       reader: Optional[str] = typer.Option(None, "--reader",
                                                            help="[default: the DID the key generates]"),
                       home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption,
                       passphrase_env: Optional[str] = PassphraseEnvOption, as_json: bool = JsonOption) -> None:
    """Read a passport's whole access log and check it against every anchor on chain."""
    from ..offchain.passport import LogBroken
    from ..sdk.passports import verify_passport_log

    key, reader = _reader_key(home, key_name, passphrase_env, reader)
    url, client = open_client(node, home)
    with node_errors(url), client:
        try:
            covered = verify_passport_log(client, passport_id, _log_auth(client, key, reader, passport_id))
        except LogBroken as exc:
            fail(f"log: {exc}")
    if as_json:
        print_json({"passport": passport_id, "anchored_entries": covered, "verified": True})
        return
    console.print(f"passport {passport_id}: the log verifies; {covered} entries covered by anchors on chain",
                  highlight=False)


@app.command("ageing")
def battery_ageing(chemistry: str = typer.Option(..., "--chemistry", help="nmc"),
                   temperature: float = typer.Option(..., "--temperature", help="Cell temperature, °C"),
                   out: Optional[Path] = typer.Option(None, "--out", help="[default: the shipped table's path]"),
                   max_cycles: int = typer.Option(MAX_CYCLES, "--max-cycles", min=1, help="Stop here if 80 % is not reached"),
                   as_json: bool = JsonOption) -> None:
    """Offline: simulate cycling to 80 % SoH and calendar ageing with PyBaMM; write the BMS's ageing table."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from ..offchain.passport.ageing import TABLE_DIR
    from ..tools.ageing import END_OF_LIFE_SOH_PCT, AgeingError, build_table, check_arguments, table_name, write_table

    try:
        check_arguments(chemistry, temperature)
        import pybamm  # noqa: F401  (the `sim` extra)
    except AgeingError as exc:
        fail(str(exc))
    except ImportError:
        fail("--chemistry: PyBaMM is not installed; install the `sim` extra: pip install -e '.[sim]'")
    path = out or TABLE_DIR / table_name(chemistry, temperature)
    fade = 100 - END_OF_LIFE_SOH_PCT
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[status]}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=as_json) as progress:
        task = progress.add_task(f"{chemistry} at {temperature:g} °C: cycling to {END_OF_LIFE_SOH_PCT} %",
                                 total=fade, status="")
        first: dict[str, float] = {}

        def on_cycle(cycle: int, capacity_ah: float) -> None:
            soh = 100 * capacity_ah / first.setdefault("capacity_ah", capacity_ah)
            progress.update(task, completed=min(fade, 100 - soh), status=f"cycle {cycle}, SoH {soh:.2f} %")

        table = build_table(chemistry, temperature, on_cycle=on_cycle, cycles=max_cycles)
        progress.update(task, completed=fade, status=f"{table['cycles']} cycles; calendar term done")
    write_table(table, path)
    last = table["rows"][-1]
    summary = {"table": str(path), "cycles": table["cycles"], "full_equivalent_cycles": last[0], "soh_pct": last[1],
               "resistance_increase_pct": last[2], "calendar_k_pct_per_sqrt_day": table["calendar"]["k_pct_per_sqrt_day"]}
    if as_json:
        print_json(summary)
        return
    console.print(f"{path}: {summary['cycles']} cycles ({last[0]:g} full equivalent) to SoH {last[1]:.2f} %, "
                  f"resistance +{last[2]:.1f} %; calendar loss {summary['calendar_k_pct_per_sqrt_day']:.4f} % × √days",
                  highlight=False)


@app.command("simulate")
def battery_simulate(batteries: int = typer.Option(..., "--batteries", min=1, max=100_000, help="How many batteries"),
                     days: int = typer.Option(..., "--days", min=1, max=7320, help="How many days of daily reports"),
                     key_name: str = typer.Option(..., "--as", help="Keystore key of an organisation accredited as "
                                                  "device manufacturer, battery manufacturer and vehicle maker"),
                     seed: int = typer.Option(1, "--seed", min=0, help="Seed of the fleet (keys, spread, driving)"),
                     start: str = typer.Option("2027-03-01", "--start", help="The first day, YYYY-MM-DD"),
                     home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption,
                     passphrase_env: Optional[str] = PassphraseEnvOption, as_json: bool = JsonOption) -> None:
    """Simulated BMSs report their state of health daily: batches to the passport service, one root each on chain."""
    import datetime
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..modules.identity import compute_did
    from ..tools.battery_sim import SimulationError, make_fleet, setup_on_node, simulate_days, soh_summary

    try:
        first = datetime.date.fromisoformat(start)
    except ValueError:
        fail(f"--start: expected a date YYYY-MM-DD, got {start!r}")
    (key,) = load_keys(home, [key_name], passphrase_env)
    operator = compute_did(key.signer(), b"")
    fleet = make_fleet(batteries, seed)
    url, client = open_client(node, home)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    began = time.perf_counter()
    with node_errors(url), client, Progress(*columns, console=console, transient=as_json) as progress:
        chain_id = client.status().chain_id
        setup = progress.add_task("passports and devices", total=batteries)
        try:
            setup_on_node(client, chain_id, key, operator, fleet, first, lambda: progress.advance(setup))
            reporting = progress.add_task("daily reports", total=days)
            reporting_began = time.perf_counter()
            counts = simulate_days(client, chain_id, fleet, first, days,
                                   lambda day, _: progress.update(reporting, completed=day))
        except SimulationError as exc:
            fail(str(exc))
    elapsed = time.perf_counter() - reporting_began
    summary = {"batteries": batteries, "days": days, **counts, **soh_summary(fleet),
               "reports_per_s": round(counts["reports"] / elapsed, 1), "elapsed_s": round(time.perf_counter() - began, 1)}
    if as_json:
        print_json(summary)
        return
    console.print(f"{batteries} batteries × {days} days: {counts['reports']} reports in {counts['txs']} txs "
                  f"(height {counts['height']}), {summary['reports_per_s']} reports/s; SoH {summary['soh_min_pct']}–"
                  f"{summary['soh_max_pct']} % (mean {summary['soh_mean_pct']} %), {summary['fec_mean']} full "
                  f"equivalent cycles on average, {summary['negative_events']} negative events", highlight=False)
