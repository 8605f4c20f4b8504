"""What every command shares: the home folder, the node's URL, passphrases, output and errors."""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional

import typer
from rich.console import Console

console = Console()
err_console = Console(stderr=True)

HOME_ENV = "CITYLEDGER_HOME"
NODE_ENV = "CITYLEDGER_NODE"


def default_home() -> Path:
    """$CITYLEDGER_HOME, else ~/.cityledger."""
    return Path(os.environ.get(HOME_ENV) or Path.home() / ".cityledger")


HomeOption = typer.Option(None, "--home", help="Node home folder [default: $CITYLEDGER_HOME or ~/.cityledger]",
                          show_default=False)
NodeOption = typer.Option(None, "--node", help="Node API URL [default: $CITYLEDGER_NODE, else from the home's "
                          "config.toml, else http://127.0.0.1:8080]", show_default=False)
JsonOption = typer.Option(False, "--json", help="Print JSON instead of a table")
PassphraseEnvOption = typer.Option(None, "--passphrase-env", metavar="VAR",
                                   help="Read the passphrase from this environment variable instead of a prompt")


def resolve_home(home: Optional[Path]) -> Path:
    return (home or default_home()).expanduser()


def resolve_node_url(node: Optional[str], home: Optional[Path]) -> str:
    """--node, then $CITYLEDGER_NODE, then the API address in the home's config, then the default."""
    if node:
        return node.rstrip("/")
    if os.environ.get(NODE_ENV):
        return os.environ[NODE_ENV].rstrip("/")
    config = resolve_home(home) / "config.toml"
    if config.exists():
        from ..node.home import load_config

        try:
            loaded = load_config(config.parent)
            host = "127.0.0.1" if loaded.api_host in ("0.0.0.0", "::", "") else loaded.api_host
            return f"http://{host}:{loaded.api_port}"
        except (ValueError, OSError):
            pass
    return "http://127.0.0.1:8080"


def keystore_folder(home: Optional[Path]) -> Path:
    return resolve_home(home) / "keystore"


def read_passphrase(env_var: Optional[str], confirm: bool = False, prompt: str = "Passphrase") -> str:
    """The passphrase from the named environment variable, else from a hidden prompt."""
    if env_var:
        value = os.environ.get(env_var)
        if value is None:
            fail(f"--passphrase-env: environment variable {env_var} is not set")
        return value
    return typer.prompt(prompt, hide_input=True, confirmation_prompt=confirm)


def fail(message: str, code: int = 1) -> None:
    """Print an error naming what is wrong and exit."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def facts_table(pairs: list[tuple[str, object]]):
    """A two-column table of name/value pairs; long hashes fold rather than being cut."""
    from rich.table import Table

    table = Table(show_header=False)
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    for name, value in pairs:
        table.add_row(name, str(value))
    return table


def print_json(value: Any) -> None:
    """Machine-readable output on stdout."""
    import msgspec

    print(json.dumps(msgspec.to_builtins(value), indent=2, sort_keys=True))


@contextmanager
def node_errors(url: str) -> Iterator[None]:
    """Report API errors and an unreachable node as one clear line each."""
    import httpx

    from ..sdk.errors import ApiError, CityLedgerError

    try:
        yield
    except ApiError as exc:
        fail(f"{exc.code}: {exc.message}")
    except CityLedgerError as exc:
        fail(str(exc))
    except httpx.ConnectError:
        fail(f"node: cannot reach {url}; is it running? (cityledger up)")
    except httpx.TimeoutException:
        fail(f"node: {url} did not answer in time")
