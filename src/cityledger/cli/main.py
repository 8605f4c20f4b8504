"""The `cityledger` command: init, up, keys, tx, query, status, bench."""

from __future__ import annotations

import typer

from . import keys, query, tx
from .node_cmds import init, status, up

app = typer.Typer(name="cityledger", help="A privacy-first consortium ledger for a smart city.",
                  no_args_is_help=True, add_completion=False)
app.command("init")(init)
app.command("up")(up)
app.command("status")(status)
app.add_typer(keys.app, name="keys")
app.add_typer(tx.app, name="tx")
app.add_typer(query.app, name="query")


@app.command("bench", add_help_option=False,
             context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def bench(ctx: typer.Context) -> None:
    """Ledger throughput benchmark; `cityledger bench --help` lists its options (--json, --txs, …)."""
    from ..tools.bench import main as bench_main

    raise typer.Exit(bench_main(list(ctx.args)) or 0)


if __name__ == "__main__":
    app()
