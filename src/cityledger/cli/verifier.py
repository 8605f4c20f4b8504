"""`cityledger verifier request|verify`: the node's verifier."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import HomeOption, JsonOption, NodeOption, console, facts_table, fail, node_errors, print_json
from .identity_common import OutOption, emit_message, open_client, read_message

app = typer.Typer(help="The node's verifier: presentation requests and verdicts.", no_args_is_help=True)


def _parse_predicate(text: str) -> tuple[str, str, int]:
    for p_type in (">=", "<=", ">", "<"):
        name, sep, value = text.partition(p_type)
        if sep and name and value.strip().lstrip("-").isdigit():
            return name.strip(), p_type, int(value)
    fail(f"--predicate: expected NAME>=N, NAME>N, NAME<=N or NAME<N, got {text!r}")
    return "", "", 0  # not reached: fail() exits


def _today() -> int:
    import time

    from ..offchain.identity import compute_today

    return compute_today(time.time_ns())


@app.command("request")
def verifier_request(credential_type: str = typer.Option("resident-id", "--type", help="Credential type asked for"),
                     reveal: list[str] = typer.Option([], "--reveal", help="Attribute to reveal, repeatable"),
                     predicate: list[str] = typer.Option([], "--predicate", help="e.g. 'birth_date<=20070615'"),
                     resident_check: bool = typer.Option(False, "--resident-check",
                                                         help="Adult and resident for a year (with --today)"),
                     today: Optional[int] = typer.Option(None, "--today", help="YYYYMMDD [default: today, UTC]"),
                     out: Optional[Path] = OutOption, home: Optional[Path] = HomeOption,
                     node: Optional[str] = NodeOption) -> None:
    """Ask the node's verifier for a presentation request pinned to the current height."""
    url, client = open_client(node, home)
    with node_errors(url), client:
        if resident_check:
            request = client.resident_request(today or _today(), reveal=reveal or ("district",))
        else:
            request = client.create_request(credential_type, reveal, [_parse_predicate(p) for p in predicate])
    emit_message(request, out)


@app.command("verify")
def verifier_verify(request_file: str = typer.Option(..., "--request", help="The request this verifier made"),
                    presentation_file: str = typer.Option(..., "--presentation", help="The holder's presentation"),
                    home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption,
                    as_json: bool = JsonOption) -> None:
    """Verify a presentation against the ledger at the request's height (exit status 1 if it fails)."""
    request = read_message(request_file, "--request")
    presentation = read_message(presentation_file, "--presentation")
    url, client = open_client(node, home)
    with node_errors(url), client:
        verdict = client.verify(request, presentation)
    if as_json:
        print_json(verdict)
    else:
        rows: list[tuple[str, object]] = [("verified", verdict["verified"]), ("height", verdict["height"])]
        rows += [("reason", verdict["reason"])] if verdict["reason"] else []
        rows += [(f"revealed {k}", v) for k, v in sorted(verdict["revealed"].items())]
        console.print(facts_table(rows))
    if not verdict["verified"]:
        raise typer.Exit(1)
