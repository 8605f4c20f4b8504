"""The `cityledger` command: init, up, keys, tx, query, status, bench, testnet; did, credential, issuer, verifier,
device; payments; battery; charging; rewards; sim."""

from __future__ import annotations

import importlib

import typer

from . import (batteries, charging, cometbft_cmds, credential, devices, did, issuer, keys, mobility, payments, query, sim,
               tx, vault, verifier, wallet)
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
app.add_typer(mobility.app, name="rewards")
app.add_typer(batteries.app, name="battery")
app.add_typer(charging.app, name="charging")
app.add_typer(vault.app, name="vault")
app.add_typer(vault.consent_app, name="consent")
app.add_typer(vault.telemetry_app, name="telemetry")
app.add_typer(wallet.app, name="wallet")
app.add_typer(sim.app, name="sim")


# `cityledger bench <name>` runs tools/bench_<name>.py; with no name, the ledger's own benchmark.
BENCHES = ("identity", "payments", "rewards", "charging", "batteries", "telemetry", "vaults", "portal")


@app.command("bench", add_help_option=False,
             context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def bench(ctx: typer.Context) -> None:
    """Ledger throughput benchmark (`cityledger bench --help`); `bench identity` for AnonCreds, `bench payments`
    for vouchers, `bench charging` for EV charging sessions over OCPP, `bench rewards` for driving-score proofs,
    `bench batteries` for SoH reports and passports, `bench telemetry` for sealed vehicle windows through
    Mosquitto and the gateway into owners' vaults, `bench vaults` for the S3 vault backend, `bench portal` for
    the explorer's block list."""
    args = list(ctx.args)
    if args[:1] and args[0] in BENCHES:
        module, args = f"bench_{args[0]}", args[1:]
    elif "--engine" in args and args[args.index("--engine") + 1:][:1] == ["cometbft"]:
        module = "bench_cometbft"
    else:
        module = "bench"
    # Imported on use: each bench pulls in its own stack (OCPP, ezkl, paho, boto3) only when it runs.
    bench_main = importlib.import_module(f"cityledger.tools.{module}").main
    raise typer.Exit(bench_main(args) or 0)


if __name__ == "__main__":
    app()
