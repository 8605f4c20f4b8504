"""`cityledger wallet ui`: the resident's own page, on this machine's loopback only (docs/PORTAL.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import HomeOption, NodeOption, console, fail, resolve_home, resolve_node_url
from .identity_common import WalletOption

app = typer.Typer(help="A resident's wallet page, served from the resident's machine.")

DEFAULT_UI_PORT = 8765


@app.command("ui")
def ui(wallet: str = WalletOption, port: int = typer.Option(DEFAULT_UI_PORT, "--port", min=1, max=65535),
       home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption) -> None:
    """Serve the wallet's page on 127.0.0.1 (the passphrase is typed into the page); Ctrl+C stops it."""
    import uvicorn

    from ..sdk import IdentityClient
    from ..tools.wallet_ui import WalletSession, create_wallet_app

    folder = resolve_home(home) / "wallets"
    path = folder / f"{wallet}.wallet"
    if not path.exists():
        fail(f"--wallet: no wallet {path}; `cityledger credential request` or `credential account` creates one")
    session = WalletSession(path, IdentityClient(resolve_node_url(node, home)), port, folder / "tails-cache")
    console.print(f"Your wallet page: http://127.0.0.1:{port}/?token={session.token}  (this machine only; "
                  "Ctrl+C stops it)")
    # Bound to loopback and nothing else: the page is for the person at this machine.
    uvicorn.run(create_wallet_app(session), host="127.0.0.1", port=port, log_level="warning", access_log=False)
