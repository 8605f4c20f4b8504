"""The module vectors the `cityledger` command can send, replayed through it (typer's CliRunner)
against an in-process node at the case's pre-state.

Which: bank transfers (`tx send`), organisation DIDs (`did create`, `did rotate`, `did deactivate`),
device registration (`device register`) and every payments message (`payments …`; a voucher goes to
`channel redeem|close --voucher -` on stdin). A case is replayed only if the command, given the
vector's keys, builds exactly the vector's message; so a multi-send, a forged signature or a hand-
made DID document is not, and governance has no commands to send proposals or votes yet. Binding
and transfer commands answer from a wallet file, which a vector (holding the account key alone)
does not carry. Arguments the command refuses itself (an amount of 0, a 19-byte address) must
leave the ledger as the vector's post-state says, without a transaction.
"""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from cityledger.cli.main import app
from cityledger.core.keys import PrivateKey
from cityledger.modules.bank import Transfer
from cityledger.modules.devices import RegisterDevice
from cityledger.modules.identity import (
    PURPOSE_ASSERTION,
    PURPOSE_AUTHENTICATION,
    CreateDid,
    DeactivateDid,
    UpdateDid,
    VerificationKey,
)
from cityledger.modules.payments import (
    CloseChannel,
    DeclareCounterparty,
    FinalizeChannel,
    FreezeDevice,
    LockEscrow,
    OpenChannel,
    RedeemVoucher,
    RefundEscrow,
    ReleaseEscrow,
    SetPolicy,
    StartClose,
    TopUpChannel,
)
from cityledger.node import runner
from cityledger.offchain.identity.devices import build_registration
from cityledger.sdk import Keystore
from cityledger.sdk.keystore import MIN_SCRYPT_N

from module_vectors import VectorFile, case_of, error_kind, expected_outcome, vectors_of
from vector_nodes import NodePool, Served, quick_cases

PASS_ENV = {"CL_VECTOR_PASS": "vectors"}
# What a command names when it refuses its own arguments (nothing reaches the ledger).
OWN_REFUSALS = (r"'?--(amount|to|voucher|payee|deposit|settle-delay|daily-cap|counterparty-cap|expiry-height|"
                r"timeout-height|kind|address|device)'?|'?(DEVICE|CHANNEL_ID|ESCROW_ID)'?")
runner_cli = CliRunner()


def _name(vectors: VectorFile, match) -> str | None:
    return next((name for name, key in sorted(vectors.keys.items()) if match(key)), None)


def _methods(key: PrivateKey) -> list:
    """The key-1 the DID commands write: the key, for assertions and authentication."""
    return [VerificationKey("key-1", key.public_key, [PURPOSE_ASSERTION, PURPOSE_AUTHENTICATION])]


def _did_args(vectors: VectorFile, signer: str, message) -> list[str] | None:
    key = vectors.keys[signer]
    if isinstance(message, CreateDid):
        if message.controller != key.signer() or message.keys != _methods(key):
            return None
        services = [f"--service={s.fragment}={s.type}={s.endpoint}" for s in message.services]
        return ["did", "create", "--key", signer, "--salt", message.salt.hex(), *services]
    if isinstance(message, UpdateDid):
        new = _name(vectors, lambda k: k.signer() == message.controller)
        if new is None or message.keys != _methods(vectors.keys[new]):
            return None
        return ["did", "rotate", message.did, "--key", signer, "--new-key", new]
    if isinstance(message, DeactivateDid):
        return ["did", "deactivate", message.did, "--key", signer]
    return None


def cli_args(vectors: VectorFile, case: dict) -> list[str] | None:
    """The command line that sends exactly this case's transaction, or None if there is none."""
    step = vectors.step(case["tx"])
    if len(step.messages) != 1 or len(step.keys) != 1 or step.signer != step.keys[0].signer():
        return None
    signer, message = case["tx"]["signers"][0], step.messages[0]
    if isinstance(message, Transfer):
        return ["tx", "send", "--from", signer, "--to", "city" + message.to.hex(), "--amount", str(message.amount)]
    if isinstance(message, RegisterDevice):
        device = _name(vectors, lambda k: k.public_key == message.device_key)
        if device is None or message != build_registration(vectors.chain_id, message.kind, message.model,
                                                           vectors.keys[device], message.manufacturer, step.keys[0]):
            return None
        return ["device", "register", "--kind", message.kind, "--model", message.model, "--device-key", device,
                "--manufacturer-key", signer, "--manufacturer-did", message.manufacturer]
    return _did_args(vectors, signer, message) or _payments_args(vectors, signer, message)


def _policy_args(message: SetPolicy) -> list[str] | None:
    """`policy set` sorts and dedups kinds and addresses: only a message already so is rebuilt."""
    if message.kinds != sorted(set(message.kinds)) or message.addresses != sorted(set(message.addresses)):
        return None
    return ["payments", "policy", "set", message.device, "--daily-cap", str(message.daily_cap),
            "--counterparty-cap", str(message.counterparty_cap), "--expiry-height", str(message.expiry_height),
            *[f"--kind={kind}" for kind in message.kinds], *[f"--address=city{a.hex()}" for a in message.addresses]]


def _payments_args(vectors: VectorFile, signer: str, message) -> list[str] | None:
    """The `payments …` command line of a payments message (the signer's key added as --from)."""
    args: list[str] | None = None
    if isinstance(message, SetPolicy):
        args = _policy_args(message)
    elif isinstance(message, FreezeDevice):
        args = ["payments", "policy", "freeze", message.device]
    elif isinstance(message, DeclareCounterparty):
        args = ["payments", "counterparty", "declare", "--kind", message.kind, "--device", message.device]
    elif isinstance(message, LockEscrow):
        args = ["payments", "escrow", "lock", "--payee", "city" + message.payee.hex(), "--amount",
                str(message.amount), "--timeout-height", str(message.timeout_height)]
    elif isinstance(message, (ReleaseEscrow, RefundEscrow)):
        verb = "release" if isinstance(message, ReleaseEscrow) else "refund"
        args = ["payments", "escrow", verb, str(message.escrow_id)]
    elif isinstance(message, OpenChannel) and message.voucher_key == vectors.keys[signer].public_key:
        args = ["payments", "channel", "open", "--payee", "city" + message.payee.hex(), "--deposit",
                str(message.deposit), "--settle-delay", str(message.settle_delay)]
    elif isinstance(message, TopUpChannel):
        args = ["payments", "channel", "top-up", str(message.channel_id), "--amount", str(message.amount)]
    elif isinstance(message, RedeemVoucher):
        args = ["payments", "channel", "redeem", "--voucher", "-"]
    elif isinstance(message, CloseChannel):
        held = message.signature or message.amount or message.nonce
        args = ["payments", "channel", "close", str(message.channel_id), *(["--voucher", "-"] if held else [])]
    elif isinstance(message, (StartClose, FinalizeChannel)):
        verb = "start-close" if isinstance(message, StartClose) else "finalize"
        args = ["payments", "channel", verb, str(message.channel_id)]
    return None if args is None else [*args, "--from", signer]


def cli_input(vectors: VectorFile, case: dict) -> str | None:
    """What the command reads on stdin: a redeemed or closing voucher, as `channel voucher` prints it."""
    message = vectors.step(case["tx"]).messages[0]
    if not isinstance(message, (RedeemVoucher, CloseChannel)):
        return None
    return json.dumps({"chain_id": vectors.chain_id, "channel_id": message.channel_id, "amount": message.amount,
                       "nonce": message.nonce, "signature": message.signature.hex()})


def _expressible(module: str, case: dict) -> bool:
    return cli_args(vectors_of(module), case) is not None


CLI_CASES = quick_cases(_expressible)


@pytest.fixture(autouse=True)
def quick_start(monkeypatch):
    """Skip the node's GC tuning: it costs a second per node and freezes each test's garbage."""
    monkeypatch.setattr(runner, "tune_gc", lambda: None)


def test_the_cli_replays_vectors_of_four_modules():
    covered = {param.values[0] for param in CLI_CASES}
    assert covered == {"bank", "devices", "identity", "payments"}
    assert len(CLI_CASES) >= 15


@pytest.fixture(scope="module")
def pool():
    nodes = NodePool()
    yield nodes
    nodes.close()


def _import_keys(served: Served, names: set[str]) -> None:
    """The vector keys a command line names, in the node home's keystore (cheap scrypt for speed)."""
    keystore = Keystore(served.home / "keystore", scrypt_n=MIN_SCRYPT_N)
    known = {info.name for info in keystore.list()}
    for name in sorted(names - known):
        keystore.import_key(name, served.vectors.keys[name], PASS_ENV["CL_VECTOR_PASS"])


@pytest.mark.parametrize("module, name", CLI_CASES)
def test_vector_through_the_cli(tmp_path, pool, module, name):
    vectors, case = vectors_of(module), case_of(module, name)
    args = cli_args(vectors, case)
    served = pool.get(tmp_path, module, case)
    height = served.height()
    try:
        _import_keys(served, set(args) & set(vectors.keys))
        result = runner_cli.invoke(app, [*args, "--home", str(served.home), "--node", served.url,
                                         "--passphrase-env", "CL_VECTOR_PASS"], env=PASS_ENV,
                                    input=cli_input(vectors, case))
        ok, error = expected_outcome(case)
        if ok:
            assert result.exit_code == 0, result.output
        else:
            found = re.search(r"\b([a-z]+)/(\d+): ", result.output)
            if found:  # the ledger refused it: the same kind as the vector's
                assert result.exit_code == 1, result.output
                assert error_kind(found.group(1), int(found.group(2))) == error, result.output
            else:  # the command refused its arguments itself, naming the option; nothing reached the ledger
                assert result.exit_code in (1, 2) and re.search(OWN_REFUSALS, result.output), result.output
                assert served.height() == height
        served.check_post(case, vectors.step(case["tx"]))
    finally:
        pool.done(served, height)
