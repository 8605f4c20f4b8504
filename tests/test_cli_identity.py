"""The identity commands' local behaviour (no node needed): init's offices, argument errors, bench dispatch.

The commands against a running node are exercised end to end in test_identity_e2e.py.
"""

from __future__ import annotations

import json
import stat

from typer.testing import CliRunner

from cityledger.cli.main import app
from cityledger.modules.identity import compute_did
from cityledger.node.home import load_key

runner = CliRunner()


def run(*args: str, env: dict | None = None):
    return runner.invoke(app, list(args), env=env)


def test_init_writes_the_offices_and_their_genesis_dids(tmp_path):
    home = tmp_path / "h"
    assert run("init", "--home", str(home), "--port", "9123", "--json").exit_code == 0
    genesis = json.loads((home / "genesis.json").read_text())
    dids = genesis["app_state"]["identity"]["dids"]
    assert sorted(d["accreditations"][0] for d in dids) == ["device-manufacturer", "resident-id",
                                                            "vehicle-registration"]
    for folder in ("id-office", "transport-office"):
        office = home / "issuers" / folder
        did = compute_did(load_key(office / "key.json").signer(), b"")
        entry = next(d for d in dids if d["keys"][0]["key"] == load_key(office / "key.json").public_key.key.hex())
        assert entry["services"][0]["endpoint"] == f"http://127.0.0.1:9123/issuers/{did}/tails/"
        for secret in ("key.json", "token", "passphrase"):
            assert stat.S_IMODE((office / secret).stat().st_mode) == 0o600, secret
        assert 'public_url = "http://127.0.0.1:9123"' in (office / "issuer.toml").read_text()


def test_invalid_identity_arguments_fail_with_one_line(tmp_path):
    home = str(tmp_path / "h")
    run("init", "--home", home)
    bad = run("verifier", "request", "--predicate", "birth_date!=1", "--home", home, "--node", "http://127.0.0.1:9")
    assert bad.exit_code == 1 and "--predicate" in bad.output
    missing = run("credential", "list", "--wallet", "nobody", "--home", home, "--passphrase-env", "X", env={"X": "x"})
    assert missing.exit_code == 1 and "--wallet" in missing.output
    unknown = run("issuer", "issue", "--issuer", "no-such-office", "--type", "resident-id", "--reference", "R",
                  "--value", "name=x", "--home", home)
    assert unknown.exit_code == 1 and "--issuer" in unknown.output
    no_values = run("issuer", "issue", "--type", "resident-id", "--reference", "R", "--home", home)
    assert no_values.exit_code == 1 and "--values" in no_values.output
    down = run("did", "resolve", "did:city:11111111111111111111", "--node", "http://127.0.0.1:9")
    assert down.exit_code == 1 and "cannot reach" in down.output


def test_bench_identity_runs_the_identity_benchmark(monkeypatch):
    import cityledger.tools.bench as bench
    import cityledger.tools.bench_identity as bench_identity

    seen = []
    monkeypatch.setattr(bench_identity, "main", lambda argv: seen.append(("identity", argv)) or 0)
    monkeypatch.setattr(bench, "main", lambda argv: seen.append(("ledger", argv)) or 0)
    assert run("bench", "identity", "--json", "--iterations", "3").exit_code == 0
    assert run("bench", "--json").exit_code == 0
    assert seen == [("identity", ["--json", "--iterations", "3"]), ("ledger", ["--json"])]


def test_bench_identity_prints_its_figures_on_the_last_line(capsys):
    from cityledger.tools.bench_identity import main

    assert main(["--iterations", "1", "--registry-size", "16", "--json"]) == 0  # the city's takes minutes
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"issue_ms", "present_ms", "verify_ms", "raw_verify_ms"} <= set(figures)
    assert figures["registry_size"] == 16
    assert all(figures[name] > 0 for name in ("issue_ms", "present_ms", "verify_ms", "raw_verify_ms"))
