"""keys add, list, show: the encrypted keystore in <home>/keystore."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from .common import (
    HomeOption,
    JsonOption,
    PassphraseEnvOption,
    console,
    fail,
    keystore_folder,
    print_json,
    read_passphrase,
)

app = typer.Typer(help="Manage the encrypted keystore (<home>/keystore).", no_args_is_help=True)


def _store(home: Optional[Path]):
    from ..sdk import Keystore

    return Keystore(keystore_folder(home))


def _row(info) -> dict:
    return {"name": info.name, "scheme": info.scheme, "address": info.address, "public_key": info.public_key}


@app.command("add")
def add(name: str = typer.Argument(..., help="Name of the new key"),
        scheme: str = typer.Option("ed25519", "--scheme", help="ed25519 or p256"),
        import_file: Optional[Path] = typer.Option(
            None, "--import-file", help="Seal an existing plaintext key file (e.g. <home>/keys/*.json)"),
        home: Optional[Path] = HomeOption, passphrase_env: Optional[str] = PassphraseEnvOption,
        as_json: bool = JsonOption) -> None:
    """Create a key (or import one) and seal it with a passphrase."""
    from ..sdk import KeystoreError

    store = _store(home)
    try:
        if store.path_of(name).exists():
            fail(f"name: a key named {name!r} already exists in {store.folder}")
        key = _read_key_file(import_file) if import_file else None
        passphrase = read_passphrase(passphrase_env, confirm=True, prompt="New passphrase")
        info = store.import_key(name, key, passphrase) if key else store.create(name, passphrase, scheme)
    except (KeystoreError, ValueError) as exc:
        fail(str(exc))
    if as_json:
        print_json(_row(info))
        return
    console.print(f"Added key [bold]{info.name}[/] ({info.scheme}): {info.address}")


def _read_key_file(path: Path):
    from ..node.home import load_key

    try:
        return load_key(path)
    except FileNotFoundError:
        fail(f"--import-file: {path} does not exist")
    except (KeyError, ValueError, OSError) as exc:
        fail(f"--import-file: {path} is not a key file written by `cityledger init` ({exc})")


@app.command("list")
def list_keys(home: Optional[Path] = HomeOption, as_json: bool = JsonOption) -> None:
    """All keys in the keystore."""
    infos = _store(home).list()
    if as_json:
        print_json([_row(info) for info in infos])
        return
    if not infos:
        console.print(f"No keys in {keystore_folder(home)}; create one with [bold]cityledger keys add NAME[/]")
        return
    table = Table("name", "scheme", "address")
    for info in infos:
        table.add_row(info.name, info.scheme, info.address)
    console.print(table)


@app.command("show")
def show(name: str = typer.Argument(..., help="Key name"), home: Optional[Path] = HomeOption,
         as_json: bool = JsonOption) -> None:
    """A key's address and public key (no passphrase needed)."""
    from ..sdk import KeystoreError

    try:
        info = _store(home).info(name)
    except KeystoreError as exc:
        fail(str(exc))
    if as_json:
        print_json(_row(info))
        return
    table = Table(show_header=False)
    for field, value in _row(info).items():
        table.add_row(field, value)
    table.add_row("file", str(info.path))
    console.print(table)
