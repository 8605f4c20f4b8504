"""`cityledger rewards programme|enroll|enrollment|score|claim|paid`: driving rewards (docs/DRIVING_SCORE.md).

Sponsors create, fund, list, show and withdraw programmes; anyone reads an enrollment's payments
(`enrollment`) and a paid claim by its commitment (`paid`); an owner's pseudonymous account enrolls with
the transport office's ticket (a JSON file), scores a trip locally from the vehicle's samples, and
claims a trip the vehicle signed (a JSON file): the proof is made here, on the owner's machine
(`claim --check` asks the node whether the chain would pay it now, and how much, and sends nothing).
Transactions are signed with a keystore key (`--from`), as `payments`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from .common import HomeOption, JsonOption, NodeOption, PassphraseEnvOption, console, facts_table, fail, print_json
from .common import keystore_folder, node_errors
from .payments import FromOption, TimeoutOption, _client, _did, _send

app = typer.Typer(help="Driving rewards: programmes, enrollment, trip scores and proven claims.",
                  no_args_is_help=True)
programme_app = typer.Typer(help="Reward programmes (sponsors).", no_args_is_help=True)
app.add_typer(programme_app, name="programme")
ProgrammeArg = typer.Argument(..., min=1, help="Programme id")


def _read_json(path: str, option: str) -> Any:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
        return json.loads(text)
    except (OSError, ValueError) as exc:
        fail(f"{option}: cannot read JSON from {path!r} ({exc})")


@programme_app.command("create")
def programme_create(budget: int = typer.Option(..., "--budget", min=1, help="Micro-credits escrowed now"),
                     min_score: int = typer.Option(..., "--min-score", min=0, max=100, help="Points a trip needs"),
                     reward_per_trip: int = typer.Option(0, "--reward-per-trip", min=0, help="Per qualifying trip"),
                     reward_per_km: int = typer.Option(0, "--reward-per-km", min=0, help="Per proven km"),
                     cap_per_trip: int = typer.Option(..., "--cap-per-trip", min=1, help="At most per trip"),
                     cap_per_enrollee: int = typer.Option(..., "--cap-per-enrollee", min=1,
                                                          help="At most per enrollee per period"),
                     period_blocks: int = typer.Option(..., "--period-blocks", min=1, help="Enrollment period"),
                     expiry_height: int = typer.Option(..., "--expiry-height", min=1, help="Last paying height"),
                     issuer: str = typer.Option(..., "--issuer", help="DID of the office that signs tickets"),
                     from_key: str = FromOption, timeout_s: float = TimeoutOption, home: Optional[Path] = HomeOption,
                     node: Optional[str] = NodeOption, passphrase_env: Optional[str] = PassphraseEnvOption,
                     as_json: bool = JsonOption) -> None:
    """Create a programme and escrow its budget from the sender's account."""
    from ..sdk.mobility import create_programme

    _did(issuer, "--issuer")
    if reward_per_trip == 0 and reward_per_km == 0:
        fail("--reward-per-trip / --reward-per-km: give at least one above 0")
    build = lambda chain_id, key, nonce: create_programme(  # noqa: E731
        chain_id, key, nonce, budget=budget, min_score=min_score, reward_per_trip=reward_per_trip,
        reward_per_km=reward_per_km, cap_per_trip=cap_per_trip, cap_per_enrollee=cap_per_enrollee,
        period_blocks=period_blocks, expiry_height=expiry_height, issuer=issuer)
    _send(from_key, home, node, passphrase_env, timeout_s, build, "programme created", as_json,
          programme_id="mobility.programme_created")


@programme_app.command("fund")
def programme_fund(programme_id: int = ProgrammeArg,
                   amount: int = typer.Option(..., "--amount", min=1, help="Micro-credits to add"),
                   from_key: str = FromOption, timeout_s: float = TimeoutOption, home: Optional[Path] = HomeOption,
                   node: Optional[str] = NodeOption, passphrase_env: Optional[str] = PassphraseEnvOption,
                   as_json: bool = JsonOption) -> None:
    """Add to a running programme's budget (its sponsor only)."""
    from ..sdk.mobility import fund_programme

    _send(from_key, home, node, passphrase_env, timeout_s,
          lambda chain_id, key, nonce: fund_programme(chain_id, key, nonce, programme_id, amount),
          "programme funded", as_json)


@programme_app.command("withdraw")
def programme_withdraw(programme_id: int = ProgrammeArg, from_key: str = FromOption,
                       timeout_s: float = TimeoutOption, home: Optional[Path] = HomeOption,
                       node: Optional[str] = NodeOption, passphrase_env: Optional[str] = PassphraseEnvOption,
                       as_json: bool = JsonOption) -> None:
    """After expiry, take back what the programme did not pay (its sponsor only)."""
    from ..sdk.mobility import withdraw_programme

    _send(from_key, home, node, passphrase_env, timeout_s,
          lambda chain_id, key, nonce: withdraw_programme(chain_id, key, nonce, programme_id),
          "programme withdrawn", as_json)


@programme_app.command("show")
def programme_show(programme_id: int = ProgrammeArg, home: Optional[Path] = HomeOption,
                   node: Optional[str] = NodeOption, as_json: bool = JsonOption) -> None:
    """A programme's terms, budget and what remains."""
    _show(node, home, as_json, lambda client: client.get_programme(programme_id))


def _show(node: Optional[str], home: Optional[Path], as_json: bool, read) -> None:
    """One typed answer of the node (`read(client)`), as JSON or as a table of its fields."""
    import msgspec

    url, client = _client(node, home)
    with node_errors(url), client:
        record = msgspec.to_builtins(read(client))
    if as_json:
        print_json(record)
        return
    console.print(facts_table(sorted((k, v) for k, v in record.items())))


@programme_app.command("list")
def programme_list(before: Optional[int] = typer.Option(None, "--before", min=1, help="Only programmes older than "
                                                         "this id (the `next` of the previous page)"),
                   home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption,
                   as_json: bool = JsonOption) -> None:
    """Reward programmes, newest first (one page)."""
    import msgspec
    from rich.table import Table

    url, client = _client(node, home)
    with node_errors(url), client:
        page = client.get_programmes(before=before)
    if as_json:
        print_json(msgspec.to_builtins(page))
        return
    table = Table("id", "sponsor", "budget", "remaining", "min score", "claims", "expiry height",
                  title=f"{page.count} programme(s)")
    for item in page.items:
        table.add_row(str(item.programme_id), item.sponsor, f"{item.budget:,}", f"{item.remaining:,}",
                      str(item.min_score), str(item.claims), str(item.expiry_height))
    console.print(table)
    if page.next is not None:
        console.print(f"older: --before {page.next}")


@app.command("enrollment")
def enrollment_show(programme_id: int = ProgrammeArg,
                    account: str = typer.Argument(..., help="The enrolled (pseudonymous) account address"),
                    period: Optional[int] = typer.Option(None, "--period", min=0, help="Enrollment period "
                                                         "[default: the current one]"),
                    home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption,
                    as_json: bool = JsonOption) -> None:
    """What one account was paid in a programme period, and for how many trips."""
    _show(node, home, as_json, lambda client: client.get_enrollment(programme_id, account, period))


@app.command("paid")
def paid_show(programme_id: int = ProgrammeArg,
              commitment: str = typer.Argument(..., help="The trip's commitment (64 hex digits)"),
              home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption, as_json: bool = JsonOption) -> None:
    """A paid claim by its trip commitment: score, km, reward and height (all the chain keeps of a trip)."""
    _show(node, home, as_json, lambda client: client.get_claim(programme_id, commitment))


@app.command("enroll")
def enroll_command(ticket: str = typer.Option(..., "--ticket", help="The office's ticket JSON ('-': stdin)"),
                   from_key: str = FromOption, timeout_s: float = TimeoutOption, home: Optional[Path] = HomeOption,
                   node: Optional[str] = NodeOption, passphrase_env: Optional[str] = PassphraseEnvOption,
                   as_json: bool = JsonOption) -> None:
    """Enroll the --from account (a fresh pseudonymous one per period) with the office's ticket."""
    from ..sdk.mobility import enroll, ticket_from_json

    try:
        message = ticket_from_json(_read_json(ticket, "--ticket"))
    except ValueError as exc:
        fail(f"--ticket: {exc}")
    _send(from_key, home, node, passphrase_env, timeout_s,
          lambda chain_id, key, nonce: enroll(chain_id, key, nonce, message), "enrolled", as_json)


@app.command("score")
def score_command(samples: str = typer.Option(..., "--samples", help="JSON list of [speed_mm_s, limit_mm_s, "
                                              "lateral_mm_s2, second_of_day], one per second ('-': stdin)"),
                  as_json: bool = JsonOption) -> None:
    """A trip's score and why, computed here from the vehicle's samples (nothing is sent)."""
    from ..offchain.mobility.features import Sample
    from ..sdk.mobility import score_samples

    raw = _read_json(samples, "--samples")
    if not isinstance(raw, list) or not all(isinstance(row, list) and len(row) == 4 for row in raw):
        fail("--samples: expected a list of [speed_mm_s, limit_mm_s, lateral_mm_s2, second_of_day] rows")
    try:
        report = score_samples([Sample(*row) for row in raw])
    except ValueError as exc:
        fail(f"--samples: {exc}")
    if as_json:
        print_json(report)
        return
    console.print(f"score [bold]{report['score']}[/] over {report['distance_km']} km", highlight=False)
    for row in report["features"]:
        console.print(f"  {row['name']:<26} {row['value']:>6} ({row['unit']}): -{row['points_lost']} points",
                      highlight=False)


@app.command("claim")
def claim_command(trip: str = typer.Option(..., "--trip", help="The vehicle's signed trip JSON ('-': stdin)"),
                  work_dir: Optional[Path] = typer.Option(None, "--work-dir", help="Where the proving key is "
                                                          "derived once (default: HOME/mobility-prover)"),
                  check: bool = typer.Option(False, "--check", help="Only ask the node whether it would pay this "
                                             "claim now, and how much: nothing is signed or sent"),
                  from_key: str = FromOption, timeout_s: float = TimeoutOption, home: Optional[Path] = HomeOption,
                  node: Optional[str] = NodeOption, passphrase_env: Optional[str] = PassphraseEnvOption,
                  as_json: bool = JsonOption) -> None:
    """Prove a signed trip's score on this machine and claim its reward for the --from account
    (with --check: ask whether the chain would pay it, and how much, without claiming)."""
    from ..modules.mobility import circuit_dir
    from ..offchain.mobility.circuit import Prover
    from ..offchain.mobility.rewards import build_claim
    from ..sdk.mobility import claim, claim_check_body, trip_from_json
    from .common import resolve_home

    try:
        signed = trip_from_json(_read_json(trip, "--trip"))
        folder = work_dir or resolve_home(home) / "mobility-prover"
        message = build_claim(Prover(circuit_dir(), str(folder)), signed)
    except ValueError as exc:
        fail(f"--trip: {exc}")
    if check:
        account = _keystore_address(home, from_key)
        _show(node, home, as_json, lambda client: client.check_claim(claim_check_body(message, account)))
        return
    _send(from_key, home, node, passphrase_env, timeout_s,
          lambda chain_id, key, nonce: claim(chain_id, key, nonce, message), "claim paid", as_json)


def _keystore_address(home: Optional[Path], name: str) -> str:
    """A keystore key's address, read without its passphrase (a check signs nothing)."""
    from ..sdk import Keystore, KeystoreError

    try:
        return Keystore(keystore_folder(home)).info(name).address
    except KeystoreError as exc:
        fail(f"--from: {exc}")
        return ""  # not reached: fail() exits
