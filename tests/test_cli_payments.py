"""`cityledger payments …` and `cityledger bench payments` through typer's CliRunner against an in-process
node: a channel's whole life and escrow's, with balances checked; options refused with their name."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cityledger.cli.main import app
from cityledger.cli.payments import voucher_from_json, voucher_to_json
from cityledger.sdk import Client, Keystore, Voucher
from cityledger.sdk.keystore import MIN_SCRYPT_N

from test_api_helpers import LiveServer, make_node

runner = CliRunner()
PASS_ENV = {"CL_TEST_PASS": "open sesame"}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A live node; its keystore holds the funded 'payer' and 'payee' keys (cheap scrypt for speed)."""
    tn = make_node(tmp_path_factory.mktemp("payments-cli"))
    keystore = Keystore(tn.home / "keystore", scrypt_n=MIN_SCRYPT_N)
    keystore.import_key("payer", tn.alice, PASS_ENV["CL_TEST_PASS"])
    keystore.import_key("payee", tn.bob, PASS_ENV["CL_TEST_PASS"])
    with LiveServer(tn.node) as server:
        yield tn, server


def cli(served, *args: str, input: str | None = None):
    tn, server = served
    return runner.invoke(app, [*args, "--home", str(tn.home), "--node", server.url, "--passphrase-env",
                               "CL_TEST_PASS"], env=PASS_ENV, input=input)


def ok_json(served, *args: str, input: str | None = None) -> dict:
    result = cli(served, *args, "--json", input=input)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def refused(served, *args: str, names: str) -> str:
    """Run a command that must fail; its error names `names`."""
    result = cli(served, *args)
    assert result.exit_code in (1, 2) and names in result.output, result.output
    return result.output


def show(served, *args: str) -> dict:
    tn, server = served
    result = runner.invoke(app, [*args, "--json", "--node", server.url])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def not_shown(served, *args: str, names: str) -> None:
    tn, server = served
    result = runner.invoke(app, [*args, "--node", server.url])
    assert result.exit_code == 1 and names in result.output, result.output


def advance_to(served, height: int) -> None:
    """Commit filler transfers (the payee to itself: no balance moves) until the chain reaches `height`
    (the solo engine makes no empty blocks)."""
    tn, server = served
    with Client(server.url) as client:
        while client.status().height < height:
            ok_json(served, "tx", "send", "--from", "payee", "--to", "city" + tn.bob.address().hex(), "--amount", "1")


def test_channel_open_vouchers_redeem_start_close_finalize(served, tmp_path):
    tn, server = served
    payee = "city" + tn.bob.address().hex()
    opened = ok_json(served, "payments", "channel", "open", "--payee", payee, "--deposit", "1000",
                     "--settle-delay", "2", "--from", "payer")
    channel = str(opened["channel_id"])
    payer_before, payee_before = tn.balance(tn.alice), tn.balance(tn.bob)
    first, second = tmp_path / "v1.json", tmp_path / "v2.json"
    for path, amount, nonce in ((first, "300", "1"), (second, "450", "2")):
        made = cli(served, "payments", "channel", "voucher", channel, "--amount", amount, "--nonce", nonce,
                   "--from", "payer", "--out", str(path))
        assert made.exit_code == 0, made.output
    assert voucher_from_json(json.loads(first.read_text())).amount == 300
    assert voucher_from_json(json.loads(second.read_text())).verify(tn.alice.public_key)

    redeemed = ok_json(served, "payments", "channel", "redeem", "--voucher", str(first), "--from", "payee")
    assert redeemed["events"][0]["attributes"]["paid"] == "300"
    assert tn.balance(tn.bob) == payee_before + 300
    refused(served, "payments", "channel", "redeem", "--voucher", str(first), "--from", "payee", names="--voucher")

    closing = ok_json(served, "payments", "channel", "start-close", channel, "--from", "payer")
    closing_height = int(closing["events"][0]["attributes"]["closing_height"])
    refused(served, "payments", "channel", "finalize", channel, "--from", "payer", names="payments/13")
    # The payer closed early; the payee still redeems its newer voucher in the window, from stdin.
    ok_json(served, "payments", "channel", "redeem", "--voucher", "-", "--from", "payee", input=second.read_text())
    assert tn.balance(tn.bob) == payee_before + 450
    advance_to(served, closing_height - 1)
    settled = ok_json(served, "payments", "channel", "finalize", channel, "--from", "payer")
    assert settled["events"][0]["attributes"] == {"channel_id": channel, "paid": "450", "refunded": "550"}
    assert tn.balance(tn.alice) == payer_before + 550
    assert show(served, "payments", "channel", "show", channel)["status"] == "settled"
    refused(served, "payments", "channel", "redeem", "--voucher", str(second), "--from", "payee", names="settled")
    tn.node.app.check_invariants()


def test_channel_close_by_the_payee_and_vouchers_the_payee_refuses(served, tmp_path):
    tn, server = served
    payee = "city" + tn.bob.address().hex()
    channel = str(ok_json(served, "payments", "channel", "open", "--payee", payee, "--deposit", "500",
                          "--settle-delay", "3", "--from", "payer")["channel_id"])
    ok_json(served, "payments", "channel", "top-up", channel, "--amount", "100", "--from", "payer")
    assert show(served, "payments", "channel", "show", channel)["deposit"] == 600
    table = runner.invoke(app, ["payments", "channel", "show", channel, "--node", server.url])
    assert table.exit_code == 0 and "deposit" in table.stdout and "600" in table.stdout, table.output
    made = cli(served, "payments", "channel", "voucher", channel, "--amount", "250", "--nonce", "4",
               "--from", "payer")
    assert made.exit_code == 0, made.output
    good = voucher_from_json(json.loads(made.stdout))
    forged = voucher_to_json(Voucher(good.chain_id, good.channel_id, 600, 5, good.signature))
    other_chain = voucher_to_json(Voucher.sign(tn.alice, "another-city", good.channel_id, 300, 5))
    for name, bad in (("signature", forged), ("channel_id", other_chain)):
        (tmp_path / f"{name}.json").write_text(json.dumps(bad))
        refused(served, "payments", "channel", "redeem", "--voucher", str(tmp_path / f"{name}.json"),
                "--from", "payee", names=name)
    refused(served, "payments", "channel", "voucher", channel, "--amount", "601", "--nonce", "5", "--from", "payer",
            names="--amount")
    refused(served, "payments", "channel", "voucher", channel, "--amount", "1", "--nonce", "5", "--from", "payee",
            names="--from")
    payer_before, payee_before = tn.balance(tn.alice), tn.balance(tn.bob)
    closed = ok_json(served, "payments", "channel", "close", channel, "--voucher", "-", "--from", "payee",
                     input=json.dumps(voucher_to_json(good)))
    assert [e["type"] for e in closed["events"]] == ["payments_voucher_redeemed", "payments_channel_settled"]
    assert (tn.balance(tn.alice), tn.balance(tn.bob)) == (payer_before + 350, payee_before + 250)
    tn.node.app.check_invariants()


def test_escrow_lock_release_and_refund_after_the_timeout(served):
    tn, server = served
    payee = "city" + tn.bob.address().hex()
    payer_before, payee_before = tn.balance(tn.alice), tn.balance(tn.bob)
    height = show(served, "status")["height"]
    first = ok_json(served, "payments", "escrow", "lock", "--payee", payee, "--amount", "100",
                    "--timeout-height", str(height + 50), "--from", "payer")["escrow_id"]
    assert show(served, "payments", "escrow", "show", str(first))["amount"] == 100
    assert show(served, "payments", "locked")["locked"] >= 100
    refused(served, "payments", "escrow", "release", str(first), "--from", "payee", names="payments/12")
    ok_json(served, "payments", "escrow", "release", str(first), "--from", "payer")
    assert (tn.balance(tn.alice), tn.balance(tn.bob)) == (payer_before - 100, payee_before + 100)
    not_shown(served, "payments", "escrow", "show", str(first), names="no escrow")

    timeout = show(served, "status")["height"] + 5
    second = str(ok_json(served, "payments", "escrow", "lock", "--payee", payee, "--amount", "70",
                         "--timeout-height", str(timeout), "--from", "payer")["escrow_id"])
    refused(served, "payments", "escrow", "refund", second, "--from", "payer", names="payments/13")
    as_text = cli(served, "payments", "escrow", "lock", "--payee", payee, "--amount", "1", "--timeout-height",
                  str(timeout + 100), "--from", "payer")
    assert as_text.exit_code == 0 and "escrow_id: " in as_text.stdout, as_text.output
    ok_json(served, "payments", "escrow", "release", as_text.stdout.split("escrow_id: ")[1].split()[0],
            "--from", "payer")
    assert tn.balance(tn.alice) == payer_before - 171
    advance_to(served, timeout - 1)
    ok_json(served, "payments", "escrow", "refund", second, "--from", "payer")
    assert (tn.balance(tn.alice), tn.balance(tn.bob)) == (payer_before - 101, payee_before + 101)
    tn.node.app.check_invariants()


def test_invalid_options_are_named_and_send_nothing(served, tmp_path):
    tn, server = served
    height = show(served, "status")["height"]
    payee = "city" + tn.bob.address().hex()
    did = "did:city:SUX3i4rH632gSQJR8XQqL4"
    refused(served, "payments", "channel", "open", "--payee", "city12", "--deposit", "5", "--settle-delay", "2",
            "--from", "payer", names="--payee")
    refused(served, "payments", "channel", "open", "--payee", payee, "--deposit", "5", "--settle-delay", "1",
            "--from", "payer", names="--settle-delay")
    refused(served, "payments", "channel", "open", "--payee", payee, "--deposit", "0", "--settle-delay", "2",
            "--from", "payer", names="--deposit")
    refused(served, "payments", "escrow", "lock", "--payee", payee, "--amount", "5", "--timeout-height", "9",
            "--from", "nobody", names="--from")
    refused(served, "payments", "policy", "set", "not-a-did", "--daily-cap", "1", "--counterparty-cap", "1",
            "--expiry-height", "9", "--kind", "charger", "--from", "payer", names="DEVICE")
    refused(served, "payments", "policy", "set", did, "--daily-cap", "1", "--counterparty-cap", "1",
            "--expiry-height", "9", "--kind", "ferry", "--from", "payer", names="--kind")
    refused(served, "payments", "policy", "set", did, "--daily-cap", "1", "--counterparty-cap", "1",
            "--expiry-height", "9", "--address", "city12", "--from", "payer", names="--address")
    refused(served, "payments", "policy", "set", did, "--daily-cap", "1", "--counterparty-cap", "1",
            "--expiry-height", "9", "--max-txs-per-window", "-1", "--from", "payer", names="--max-txs-per-window")
    refused(served, "payments", "policy", "freeze", did, names="--from / --wallet")
    refused(served, "payments", "policy", "freeze", did, "--from", "payer", "--wallet", "w", names="--from / --wallet")
    refused(served, "payments", "policy", "freeze", did, "--wallet", "nobody", names="--wallet")
    not_shown(served, "payments", "policy", "show", did, names="no spending policy")
    refused(served, "payments", "counterparty", "declare", "--kind", "charger", "--device", "x", "--from", "payer",
            names="--device")
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "partial.json").write_text(json.dumps({"chain_id": "c", "channel_id": 1, "amount": 1, "nonce": 1}))
    (tmp_path / "typed.json").write_text(json.dumps({"chain_id": "c", "channel_id": 1, "amount": "1", "nonce": 1,
                                                     "signature": "00"}))
    cases = (("broken", "not JSON"), ("partial", "signature"), ("typed", "amount"), ("missing", "cannot read"))
    for name, says in cases:
        output = refused(served, "payments", "channel", "redeem", "--voucher", str(tmp_path / f"{name}.json"),
                         "--from", "payee", names="--voucher")
        assert says in output or (name == "broken" and "Expecting" in output), output
    refused(served, "payments", "channel", "close", "1", "--voucher", str(tmp_path / "typed.json"),
            "--from", "payee", names="--voucher")
    assert show(served, "status")["height"] == height


def test_voucher_signs_offline_with_a_chain_id(tmp_path):
    home = tmp_path / "h"
    Keystore(home / "keystore", scrypt_n=MIN_SCRYPT_N).import_key("car", make_key(), PASS_ENV["CL_TEST_PASS"])
    result = runner.invoke(app, ["payments", "channel", "voucher", "9", "--amount", "5", "--nonce", "1",
                                 "--chain-id", "offline-city", "--from", "car", "--home", str(home),
                                 "--node", "http://127.0.0.1:9", "--passphrase-env", "CL_TEST_PASS"], env=PASS_ENV)
    assert result.exit_code == 0, result.output
    voucher = voucher_from_json(json.loads(result.stdout))
    assert (voucher.chain_id, voucher.channel_id, voucher.amount, voucher.nonce) == ("offline-city", 9, 5, 1)
    assert voucher.verify(make_key().public_key)


def make_key():
    from cityledger.core.keys import PrivateKey

    return PrivateKey(2, b"\x31" * 32)


def test_bench_payments_is_dispatched(monkeypatch):
    import cityledger.tools.bench_payments as bench_payments

    seen = []
    monkeypatch.setattr(bench_payments, "main", lambda argv: seen.append(argv) or 0)
    assert runner.invoke(app, ["bench", "payments", "--json", "--samples", "40"]).exit_code == 0
    assert seen == [["--json", "--samples", "40"]]


def test_bench_payments_prints_both_curves_on_its_last_line(capsys):
    from cityledger.tools.bench_payments import main

    assert main(["--samples", "40", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["samples"] == 40 and figures["cores_used"] == 1
    for curve in ("ed25519", "p256"):
        vouchers, signatures = figures["vouchers_verified_per_s"][curve], figures["signature_verify_per_s"][curve]
        assert vouchers > 0 and signatures > 0
        assert abs(figures["ratio"][curve] - vouchers / signatures) < 0.01
