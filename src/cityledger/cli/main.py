"""The `cityledger` command: init, up, keys, tx, query, status, bench, testnet; did, credential, issuer, verifier,
device; payments; battery; charging."""

from __future__ import annotations

import typer

from . import (batteries, charging, cometbft_cmds, credential, devices, did, issuer, keys, payments, query, tx,
               verifier, wallet)
from .node_cmds import init, status, up

app = typer.Typer(name="cityledger", help="A privacy-first consortium ledger for a smart city.",
                  no_args_is_help=True, add_completion=False)
app.command("init")(init)
app.command("up")(up)
app.command("status")(status)
app.add_typer(keys.app, name="keys")
app.add_typer(tx.app, name="tx")
app.add_typer(query.app, name="query")
app.add_typer(cometbft_cmds.app, name="testnet")
app.add_typer(did.app, name="did")
app.add_typer(issuer.app, name="issuer")
app.add_typer(credential.app, name="credential")
app.add_typer(verifier.app, name="verifier")
app.add_typer(devices.app, name="device")
app.add_typer(payments.app, name="payments")
app.add_typer(batteries.app, name="battery")
app.add_typer(charging.app, name="charging")
app.add_typer(wallet.app, name="wallet")


@app.command("bench", add_help_option=False,
             context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def bench(ctx: typer.Context) -> None:
    """Ledger throughput benchmark (`cityledger bench --help`); `bench identity` for AnonCreds, `bench payments`
    for vouchers, `bench charging` for EV charging sessions over OCPP, `bench portal` for the explorer's block list."""
    args = list(ctx.args)
    if args[:1] == ["identity"]:
        from ..tools.bench_identity import main as bench_main

        args = args[1:]
    elif args[:1] == ["payments"]:
        from ..tools.bench_payments import main as bench_main

        args = args[1:]
    elif args[:1] == ["charging"]:
        from ..tools.bench_charging import main as bench_main

        args = args[1:]
    elif args[:1] == ["portal"]:
        from ..tools.bench_portal import main as bench_main

        args = args[1:]
    elif "--engine" in args and args[args.index("--engine") + 1:][:1] == ["cometbft"]:
        from ..tools.bench_cometbft import main as bench_main
    else:
        from ..tools.bench import main as bench_main
    raise typer.Exit(bench_main(args) or 0)


if __name__ == "__main__":
    app()
