"""`cityledger issuer list|publish|issue|revoke`: an office hosted by the node (token from its folder)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from .common import (
    HomeOption,
    JsonOption,
    NodeOption,
    console,
    facts_table,
    fail,
    node_errors,
    print_json,
    resolve_home,
)
from .identity_common import OutOption, emit_message, open_client, read_message

app = typer.Typer(help="Issuer offices hosted by the node: publish, issue (pre-authorised offers), revoke.",
                  no_args_is_help=True)

# Publishing creates the type's first revocation registry: minutes at the city's size (131,072).
PUBLISH_TIMEOUT_S = 1_800
PROGRESS_POLL_S = 1.0
IssuerOption = typer.Option("id-office", "--issuer", help="Issuer folder in <home>/issuers")


def _office(home: Optional[Path], name: str) -> tuple[str, str]:
    """(DID, operator token) of an issuer folder in the home."""
    from ..modules.identity import compute_did
    from ..node.home import load_key

    folder = resolve_home(home) / "issuers" / name
    try:
        key = load_key(folder / "key.json")
        token = (folder / "token").read_text().strip()
    except (OSError, KeyError, ValueError) as exc:
        fail(f"--issuer: {folder} is not an issuer folder written by `cityledger init` ({exc})")
    return compute_did(key.signer(), b""), token


@app.command("list")
def issuer_list(home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption,
                as_json: bool = JsonOption) -> None:
    """The issuers the node hosts, and what each has published."""
    url, client = open_client(node, home)
    with node_errors(url), client:
        issuers = client.list_issuers()
    if as_json:
        print_json(issuers)
        return
    table = Table("folder", "name", "did", "types", "published")
    for item in issuers:
        table.add_row(item["folder"], item["name"], item["did"], ", ".join(item["credential_types"]),
                      ", ".join(item["published"]) or "-")
    console.print(table)


@app.command("publish")
def issuer_publish(issuer: str = IssuerOption,
                   credential_type: Optional[str] = typer.Option(None, "--type", help="[default: all its types]"),
                   home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption,
                   as_json: bool = JsonOption) -> None:
    """Anchor the office's schemas, credential definitions and first registries (once; minutes at the city's size)."""
    did, token = _office(home, issuer)
    url, client = open_client(node, home, token)
    with node_errors(url), client:
        types = [credential_type] if credential_type else client.get_issuer(did)["credential_types"]
        published = {name: _publish(client, did, name, show=not as_json) for name in types}
    if as_json:
        print_json({"did": did, "published": published})
        return
    for name, ids in published.items():
        console.print(f"[bold]{name}[/]", highlight=False)
        console.print(facts_table(list(ids.items())))


# What each step of a publication is called beside the progress bar.
_STEPS = {"definition": "schema and credential definition", "registry": "revocation registry",
          "anchoring": "anchoring"}


def _publish(client: Any, did: str, name: str, show: bool) -> dict[str, str]:
    """Publish one type and wait, polling the node: a progress bar (the registry takes minutes at the city's size)."""
    if not show:
        return _ids(client.publish(did, name, timeout_s=PUBLISH_TIMEOUT_S))
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
               TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(f"{name}: {_STEPS['definition']}", total=100)

        def shown(state: dict[str, Any]) -> None:
            step = _STEPS.get(state["step"], state["step"] or state["state"])
            bar.update(task, completed=state["percent"], description=f"{name}: {step}")

        return _ids(client.publish(did, name, timeout_s=PUBLISH_TIMEOUT_S, on_progress=shown,
                                   poll_s=PROGRESS_POLL_S))


def _ids(state: dict[str, Any]) -> dict[str, str]:
    """The anchored ids of a published type."""
    return {key: state[key] for key in ("schema_id", "cred_def_id", "rev_reg_id")}


def _values(values_file: Optional[Path], pairs: list[str]) -> dict:
    values: dict[str, Any] = dict(read_message(str(values_file), "--values")) if values_file else {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            fail(f"--value: expected NAME=VALUE, got {pair!r}")
        values[name] = int(value) if value.isdigit() and not value.startswith("0") else value
    if not values:
        fail("--values: give the credential's values (--values FILE or --value NAME=VALUE ...)")
    return values


@app.command("issue")
def issuer_issue(credential_type: str = typer.Option(..., "--type", help="Credential type, e.g. resident-id"),
                 reference: str = typer.Option(..., "--reference", help="The office's own key (e.g. ID-card number)"),
                 values_file: Optional[Path] = typer.Option(None, "--values", help="JSON file of the values"),
                 value: list[str] = typer.Option([], "--value", help="NAME=VALUE, repeatable"),
                 issuer: str = IssuerOption, out: Optional[Path] = OutOption,
                 home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption) -> None:
    """Pre-authorise a credential for a checked person: prints the offer the resident redeems once."""
    values = _values(values_file, value)
    did, token = _office(home, issuer)
    url, client = open_client(node, home, token)
    with node_errors(url), client:
        offer = client.create_offer(did, credential_type, values, reference)
    emit_message(offer, out)


@app.command("revoke")
def issuer_revoke(references: list[str] = typer.Argument(..., help="The office's references to revoke"),
                  issuer: str = IssuerOption, home: Optional[Path] = HomeOption,
                  node: Optional[str] = NodeOption, as_json: bool = JsonOption) -> None:
    """Revoke credentials (one status-list update): their next presentation fails."""
    did, token = _office(home, issuer)
    url, client = open_client(node, home, token)
    with node_errors(url), client:
        result = client.revoke(did, references)
    if as_json:
        print_json(result)
        return
    console.print(f"revoked {result['revoked']} credential(s) at height {result['height']}", highlight=False)
