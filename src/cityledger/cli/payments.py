"""`cityledger payments policy|escrow|channel|counterparty|locked`: machine payments (docs/PAYMENTS.md).

Transactions are signed with a keystore key (`--from`, as `tx send`); a device's policy may instead
be signed by the wallet account that owns the device (`--wallet`, as `device bind`). A voucher is a
JSON file the payer's `channel voucher` prints and the payee's `channel redeem|close --voucher`
reads ('-': stdin); the payee's side checks it as the chain will before sending it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from ..modules.payments.messages import (
    COUNTERPARTY_KINDS,
    MAX_POLICY_ADDRESSES,
    MAX_SETTLE_DELAY_BLOCKS,
    MIN_SETTLE_DELAY_BLOCKS,
)
from .common import (
    HomeOption,
    JsonOption,
    NodeOption,
    PassphraseEnvOption,
    console,
    facts_table,
    fail,
    keystore_folder,
    node_errors,
    print_json,
    read_passphrase,
    resolve_node_url,
)
from .identity_common import OutOption, emit_message

app = typer.Typer(help="Machine payments: device spending policies, escrow, payment channels.",
                  no_args_is_help=True)
policy_app = typer.Typer(help="Device spending policies (set by the device's owner).", no_args_is_help=True)
escrow_app = typer.Typer(help="Escrow: lock for a payee, release, refund after the timeout.", no_args_is_help=True)
channel_app = typer.Typer(help="Unidirectional payment channels and their off-chain vouchers.", no_args_is_help=True)
counterparty_app = typer.Typer(help="Declared counterparties (chargers, parking, tolls).", no_args_is_help=True)
app.add_typer(policy_app, name="policy")
app.add_typer(escrow_app, name="escrow")
app.add_typer(channel_app, name="channel")
app.add_typer(counterparty_app, name="counterparty")

FromOption = typer.Option(..., "--from", help="Keystore key that signs")
TimeoutOption = typer.Option(30.0, "--timeout-s", min=0.1, help="How long to wait for the commit")
ChannelArg = typer.Argument(..., min=1, help="Channel id")
EscrowArg = typer.Argument(..., min=1, help="Escrow id")
VoucherOption = typer.Option(None, "--voucher", help="Voucher JSON file from `channel voucher` ('-': stdin)")


def _client(node: Optional[str], home: Optional[Path]):
    from ..sdk import IdentityClient

    url = resolve_node_url(node, home)
    return url, IdentityClient(url)


def _keystore_key(home: Optional[Path], name: str, passphrase_env: Optional[str], option: str = "--from"):
    from ..sdk import Keystore, KeystoreError

    store = Keystore(keystore_folder(home))
    try:
        store.info(name)
        return store.load(name, read_passphrase(passphrase_env))
    except KeystoreError as exc:
        fail(f"{option}: {exc}")


def _address(text: str, option: str) -> bytes:
    from ..sdk import to_address

    try:
        return to_address(text, option)
    except ValueError as exc:
        fail(str(exc))
        return b""  # not reached: fail() exits


def _did(text: str, option: str) -> str:
    from ..modules.identity.did import is_did

    if not is_did(text):
        fail(f"{option}: expected a did:city:… DID, got {text[:80]!r}")
    return text


def _submit(client, url: str, key, build: Callable[[str, int], bytes], timeout_s: float):
    """Sign with `key` at its next nonce, submit, wait; fail with the ledger's code if refused."""
    with node_errors(url):
        chain_id = client.status().chain_id
        tx = build(chain_id, client.get_nonce(key.address()))
        result = client.submit(tx, wait=True, timeout_s=timeout_s)
    if result.result is None:
        fail(f"tx: {result.tx_id} not committed in {timeout_s} s (status {result.status})")
    if not result.result.ok:
        fail(f"{result.result.codespace}/{result.result.code}: {result.result.log}")
    return result


def _report(result, what: str, as_json: bool, **ids: str) -> None:
    """The committed tx: its id, height, events, and the new record's id (from its event)."""
    events = [{"type": e.type, "attributes": {a.key: a.value for a in e.attributes}} for e in result.result.events]
    found = {name: int(v) for name, event in ids.items()
             for v in [next((e["attributes"].get(name) for e in events if e["type"] == event), None)] if v}
    if as_json:
        print_json({"tx_id": result.tx_id, "height": result.height, **found, "events": events})
        return
    console.print(f"{what} at height {result.height}", highlight=False)
    for name, value in found.items():
        console.print(f"{name}: [bold]{value}[/]", highlight=False)


def _send(from_key: str, home, node, passphrase_env, timeout_s: float, build, what: str, as_json: bool,
          **ids: str) -> None:
    """A one-message tx from a keystore key: build(chain_id, key, nonce) -> tx bytes."""
    key = _keystore_key(home, from_key, passphrase_env)
    url, client = _client(node, home)
    with client:
        result = _submit(client, url, key, lambda chain_id, nonce: _build(build, chain_id, key, nonce), timeout_s)
    _report(result, what, as_json, **ids)


def _build(build, chain_id: str, key, nonce: int) -> bytes:
    try:
        return build(chain_id, key, nonce)
    except ValueError as exc:  # a field the builder refused; the message names it
        fail(str(exc))
        return b""  # not reached: fail() exits


def _show(node, home, name: str, as_json: bool, **args: Any) -> None:
    url, client = _client(node, home)
    with node_errors(url), client:
        record = client.query("payments", name, **args)
    if as_json:
        print_json(record)
        return
    console.print(facts_table(sorted((k, v) for k, v in record.items())))


# --- policies ---------------------------------------------------------------------------------------

def _owner_send(device: str, from_key: Optional[str], wallet: Optional[str], purpose: str, index: int, home, node,
                passphrase_env, timeout_s: float, build, what: str, as_json: bool) -> None:
    """A policy tx signed by the device's owner: a keystore key, or the wallet account that owns it."""
    if (from_key is None) == (wallet is None):
        fail("--from / --wallet: give exactly one (a keystore key, or the wallet account that owns the device)")
    if from_key is not None:
        _send(from_key, home, node, passphrase_env, timeout_s, build, what, as_json)
        return
    from .identity_common import open_wallet

    url, client = _client(node, home)
    with client:
        with node_errors(url):
            owner = open_wallet(home, wallet, passphrase_env, client).account(purpose, index)
        result = _submit(client, url, owner, lambda chain_id, nonce: _build(build, chain_id, owner, nonce), timeout_s)
    _report(result, what, as_json)


OwnerFromOption = typer.Option(None, "--from", help="Keystore key of the device's owner")
OwnerWalletOption = typer.Option(None, "--wallet", help="Or: the wallet whose account owns the device")
PurposeOption = typer.Option("vehicle", "--purpose", help="Wallet account purpose (with --wallet)")
IndexOption = typer.Option(0, "--account-index", min=0, help="Wallet account index (with --wallet)")


@policy_app.command("set")
def policy_set(device: str = typer.Argument(..., help="The device's DID"),
               daily_cap: int = typer.Option(..., "--daily-cap", min=1, help="Micro-credits per block-time day"),
               counterparty_cap: int = typer.Option(..., "--counterparty-cap", min=1,
                                                    help="Micro-credits per day to any one counterparty"),
               expiry_height: int = typer.Option(..., "--expiry-height", min=1,
                                                 help="Last height the policy allows payments at"),
               kinds: list[str] = typer.Option([], "--kind", help="Allowed counterparty kind: charger, parking, "
                                               "toll (repeatable)"),
               addresses: list[str] = typer.Option([], "--address", help="Allowed counterparty address (repeatable)"),
               max_txs: int = typer.Option(0, "--max-txs-per-window", min=0,
                                           help="Txs the device may send per quota window (0: the chain's default)"),
               from_key: Optional[str] = OwnerFromOption, wallet: Optional[str] = OwnerWalletOption,
               purpose: str = PurposeOption, index: int = IndexOption, timeout_s: float = TimeoutOption,
               home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption,
               passphrase_env: Optional[str] = PassphraseEnvOption, as_json: bool = JsonOption) -> None:
    """Set (replace, unfreeze) what a device's own account may spend."""
    from ..sdk import set_policy

    _did(device, "DEVICE")
    for kind in kinds:
        if kind not in COUNTERPARTY_KINDS:
            fail(f"--kind: expected one of {', '.join(COUNTERPARTY_KINDS)}, got {kind!r}")
    allowed = tuple(_address(a, "--address") for a in addresses)
    if len(set(allowed)) > MAX_POLICY_ADDRESSES:
        fail(f"--address: expected at most {MAX_POLICY_ADDRESSES} distinct addresses, got {len(set(allowed))}")
    build = lambda chain_id, key, nonce: set_policy(  # noqa: E731
        chain_id, key, nonce, device, daily_cap=daily_cap, counterparty_cap=counterparty_cap,
        expiry_height=expiry_height, kinds=tuple(kinds), addresses=allowed, max_txs_per_window=max_txs)
    _owner_send(device, from_key, wallet, purpose, index, home, node, passphrase_env, timeout_s, build,
                f"policy set for {device}", as_json)


@policy_app.command("freeze")
def policy_freeze(device: str = typer.Argument(..., help="The device's DID"),
                  from_key: Optional[str] = OwnerFromOption, wallet: Optional[str] = OwnerWalletOption,
                  purpose: str = PurposeOption, index: int = IndexOption, timeout_s: float = TimeoutOption,
                  home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption,
                  passphrase_env: Optional[str] = PassphraseEnvOption, as_json: bool = JsonOption) -> None:
    """Stop every payment from the device at once (a stolen car); `policy set` lifts it."""
    from ..sdk import freeze_device

    _did(device, "DEVICE")
    _owner_send(device, from_key, wallet, purpose, index, home, node, passphrase_env, timeout_s,
                lambda chain_id, key, nonce: freeze_device(chain_id, key, nonce, device), f"froze {device}", as_json)


@policy_app.command("show")
def policy_show(device: str = typer.Argument(..., help="The device's DID"),
                time_ns: Optional[int] = typer.Option(None, "--time-ns", min=0,
                                                      help="Block time whose day spent_today counts [default: the "
                                                      "latest block's]"),
                home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption,
                as_json: bool = JsonOption) -> None:
    """A device's policy, whether it binds its current owner, and what it spent that day."""
    _did(device, "DEVICE")
    if time_ns is None:
        url, client = _client(node, home)
        with node_errors(url), client:
            time_ns = client.get_block(None).time_ns
    _show(node, home, "policy", as_json, device=device, time_ns=str(time_ns))


@counterparty_app.command("declare")
def counterparty_declare(kind: str = typer.Option(..., "--kind", help="charger, parking or toll"),
                         device: str = typer.Option(..., "--device", help="DID of an active device you own that "
                                                    "vouches for it (a charger; a meter for parking and toll)"),
                         from_key: str = FromOption, timeout_s: float = TimeoutOption,
                         home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption,
                         passphrase_env: Optional[str] = PassphraseEnvOption, as_json: bool = JsonOption) -> None:
    """Declare the `--from` account a counterparty of a kind, so policies allowing that kind may pay it."""
    from ..sdk import declare_counterparty

    if kind not in COUNTERPARTY_KINDS:
        fail(f"--kind: expected one of {', '.join(COUNTERPARTY_KINDS)}, got {kind!r}")
    _did(device, "--device")
    _send(from_key, home, node, passphrase_env, timeout_s,
          lambda chain_id, key, nonce: declare_counterparty(chain_id, key, nonce, kind, device),
          f"declared a {kind}", as_json)


@counterparty_app.command("show")
def counterparty_show(address: str = typer.Argument(..., help="Address (city…)"),
                      home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption,
                      as_json: bool = JsonOption) -> None:
    """A declared counterparty: its kind and vouching device."""
    _address(address, "ADDRESS")
    _show(node, home, "counterparty", as_json, address=address)


@app.command("locked")
def locked(home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption, as_json: bool = JsonOption) -> None:
    """Credits locked in escrows and channels, and the account holding them."""
    _show(node, home, "locked", as_json)


# --- escrow -----------------------------------------------------------------------------------------

@escrow_app.command("lock")
def escrow_lock(payee: str = typer.Option(..., "--payee", help="Payee address (city…)"),
                amount: int = typer.Option(..., "--amount", min=1, help="Micro-credits to lock"),
                timeout_height: int = typer.Option(..., "--timeout-height", min=1,
                                                   help="From this height on the payer may take it back"),
                from_key: str = FromOption, timeout_s: float = TimeoutOption, home: Optional[Path] = HomeOption,
                node: Optional[str] = NodeOption, passphrase_env: Optional[str] = PassphraseEnvOption,
                as_json: bool = JsonOption) -> None:
    """Lock credits for a payee; prints the escrow id."""
    from ..sdk import lock_escrow

    to = _address(payee, "--payee")
    _send(from_key, home, node, passphrase_env, timeout_s,
          lambda chain_id, key, nonce: lock_escrow(chain_id, key, nonce, to, amount, timeout_height),
          f"locked {amount} for {payee}", as_json, escrow_id="payments_escrow_locked")


@escrow_app.command("release")
def escrow_release(escrow_id: int = EscrowArg, from_key: str = FromOption, timeout_s: float = TimeoutOption,
                   home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption,
                   passphrase_env: Optional[str] = PassphraseEnvOption, as_json: bool = JsonOption) -> None:
    """The payer pays an escrow to its payee."""
    from ..sdk import release_escrow

    _send(from_key, home, node, passphrase_env, timeout_s,
          lambda chain_id, key, nonce: release_escrow(chain_id, key, nonce, escrow_id),
          f"released escrow {escrow_id}", as_json)


@escrow_app.command("refund")
def escrow_refund(escrow_id: int = EscrowArg, from_key: str = FromOption, timeout_s: float = TimeoutOption,
                  home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption,
                  passphrase_env: Optional[str] = PassphraseEnvOption, as_json: bool = JsonOption) -> None:
    """The payer takes an escrow back, from its timeout height on."""
    from ..sdk import refund_escrow

    _send(from_key, home, node, passphrase_env, timeout_s,
          lambda chain_id, key, nonce: refund_escrow(chain_id, key, nonce, escrow_id),
          f"refunded escrow {escrow_id}", as_json)


@escrow_app.command("show")
def escrow_show(escrow_id: int = EscrowArg, home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption,
                as_json: bool = JsonOption) -> None:
    """An escrow still locked (released and refunded ones are gone)."""
    _show(node, home, "escrow", as_json, id=str(escrow_id))


# --- channels ---------------------------------------------------------------------------------------

@channel_app.command("open")
def channel_open(payee: str = typer.Option(..., "--payee", help="Payee address (city…)"),
                 deposit: int = typer.Option(..., "--deposit", min=1, help="Micro-credits to lock in the channel"),
                 settle_delay: int = typer.Option(..., "--settle-delay", min=MIN_SETTLE_DELAY_BLOCKS,
                                                  max=MAX_SETTLE_DELAY_BLOCKS,
                                                  help="Blocks of the challenge window after start-close"),
                 from_key: str = typer.Option(..., "--from", help="Keystore key that pays and signs the vouchers"),
                 timeout_s: float = TimeoutOption, home: Optional[Path] = HomeOption,
                 node: Optional[str] = NodeOption, passphrase_env: Optional[str] = PassphraseEnvOption,
                 as_json: bool = JsonOption) -> None:
    """Open a channel to a payee; its vouchers are signed by the `--from` key. Prints the channel id."""
    from ..sdk import open_channel

    to = _address(payee, "--payee")
    _send(from_key, home, node, passphrase_env, timeout_s,
          lambda chain_id, key, nonce: open_channel(chain_id, key, nonce, to, deposit, settle_delay),
          f"opened a channel to {payee}", as_json, channel_id="payments_channel_opened")


@channel_app.command("top-up")
def channel_top_up(channel_id: int = ChannelArg,
                   amount: int = typer.Option(..., "--amount", min=1, help="Micro-credits to add to the deposit"),
                   from_key: str = FromOption, timeout_s: float = TimeoutOption, home: Optional[Path] = HomeOption,
                   node: Optional[str] = NodeOption, passphrase_env: Optional[str] = PassphraseEnvOption,
                   as_json: bool = JsonOption) -> None:
    """The payer adds to an open channel's deposit."""
    from ..sdk import top_up_channel

    _send(from_key, home, node, passphrase_env, timeout_s,
          lambda chain_id, key, nonce: top_up_channel(chain_id, key, nonce, channel_id, amount),
          f"topped up channel {channel_id} by {amount}", as_json)


@channel_app.command("start-close")
def channel_start_close(channel_id: int = ChannelArg, from_key: str = FromOption, timeout_s: float = TimeoutOption,
                        home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption,
                        passphrase_env: Optional[str] = PassphraseEnvOption, as_json: bool = JsonOption) -> None:
    """The payer starts the challenge window; the payee may still redeem during it."""
    from ..sdk import start_close

    _send(from_key, home, node, passphrase_env, timeout_s,
          lambda chain_id, key, nonce: start_close(chain_id, key, nonce, channel_id),
          f"channel {channel_id} closing", as_json)


@channel_app.command("finalize")
def channel_finalize(channel_id: int = ChannelArg, from_key: str = FromOption, timeout_s: float = TimeoutOption,
                     home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption,
                     passphrase_env: Optional[str] = PassphraseEnvOption, as_json: bool = JsonOption) -> None:
    """Either party settles a channel whose window has passed: the unpaid deposit returns to the payer."""
    from ..sdk import finalize_channel

    _send(from_key, home, node, passphrase_env, timeout_s,
          lambda chain_id, key, nonce: finalize_channel(chain_id, key, nonce, channel_id),
          f"channel {channel_id} settled", as_json)


@channel_app.command("show")
def channel_show(channel_id: int = ChannelArg, home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption,
                 as_json: bool = JsonOption) -> None:
    """A channel: parties, deposit, redeemed, newest nonce, status."""
    _show(node, home, "channel", as_json, id=str(channel_id))


# --- vouchers ---------------------------------------------------------------------------------------

VOUCHER_FIELDS = ("chain_id", "channel_id", "amount", "nonce", "signature")


def voucher_to_json(voucher) -> dict[str, Any]:
    """A voucher as the JSON `channel voucher` prints and `channel redeem --voucher` reads."""
    return {"chain_id": voucher.chain_id, "channel_id": voucher.channel_id, "amount": voucher.amount,
            "nonce": voucher.nonce, "signature": voucher.signature.hex()}


def voucher_from_json(value: Any):
    """The voucher of a JSON object; ValueError naming the field that is missing or malformed."""
    from ..sdk import Voucher

    if not isinstance(value, dict) or sorted(value) != sorted(VOUCHER_FIELDS):
        raise ValueError(f"expected an object with exactly {', '.join(VOUCHER_FIELDS)}")
    if not isinstance(value["chain_id"], str) or not value["chain_id"]:
        raise ValueError("chain_id: expected a non-empty string")
    for name in ("channel_id", "amount", "nonce"):
        if type(value[name]) is not int or value[name] < 0:
            raise ValueError(f"{name}: expected a non-negative integer, got {value[name]!r}")
    try:
        signature = bytes.fromhex(value["signature"]) if isinstance(value["signature"], str) else None
    except ValueError:
        signature = None
    if not signature:
        raise ValueError("signature: expected hex digits")
    return Voucher(value["chain_id"], value["channel_id"], value["amount"], value["nonce"], signature)


def _read_voucher(path: str):
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
        return voucher_from_json(json.loads(text))
    except OSError as exc:
        fail(f"--voucher: cannot read {path} ({exc.strerror})")
    except (json.JSONDecodeError, ValueError) as exc:
        fail(f"--voucher: {exc}")


def _channel_key(channel: dict[str, Any]):
    from ..core.keys import PublicKey

    return PublicKey(channel["voucher_key"]["scheme"], bytes.fromhex(channel["voucher_key"]["key"]))


def _checked_voucher(client, path: str, channel_id: Optional[int]):
    """The payee's check before sending: what the chain would refuse is refused here, naming why."""
    from ..sdk import VoucherError, VoucherTracker

    voucher = _read_voucher(path)
    if channel_id is not None and voucher.channel_id != channel_id:
        fail(f"--voucher: channel_id: is for channel {voucher.channel_id}, not {channel_id}")
    chain_id = client.status().chain_id
    channel = client.query("payments", "channel", id=str(voucher.channel_id))
    if channel["status"] == "settled":
        fail(f"--voucher: channel {voucher.channel_id} is settled; no voucher redeems on it")
    tracker = VoucherTracker(chain_id, voucher.channel_id, _channel_key(channel), channel["deposit"],
                             channel["redeemed"], channel["nonce"])
    try:
        tracker.accept(voucher)
    except VoucherError as exc:
        fail(f"--voucher: {exc}")
    return voucher


@channel_app.command("voucher")
def channel_voucher(channel_id: int = ChannelArg,
                    amount: int = typer.Option(..., "--amount", min=0,
                                               help="Cumulative micro-credits the channel owes the payee"),
                    nonce: int = typer.Option(..., "--nonce", min=1, max=2**63 - 1,
                                              help="Above every earlier voucher's nonce on this channel"),
                    from_key: str = typer.Option(..., "--from", help="Keystore key that opened the channel"),
                    chain_id: Optional[str] = typer.Option(None, "--chain-id",
                                                           help="Sign offline for this chain, without checking "
                                                           "the channel [default: ask the node and check]"),
                    out: Optional[Path] = OutOption, home: Optional[Path] = HomeOption,
                    node: Optional[str] = NodeOption, passphrase_env: Optional[str] = PassphraseEnvOption) -> None:
    """Sign a voucher off-chain for the payee; prints it as JSON (or writes --out). No tx is sent."""
    from ..sdk import Voucher

    key = _keystore_key(home, from_key, passphrase_env)
    if chain_id is None:
        url, client = _client(node, home)
        with node_errors(url), client:
            chain_id = client.status().chain_id
            channel = client.query("payments", "channel", id=str(channel_id))
        _check_payer_side(channel, key, amount, nonce)
    emit_message(voucher_to_json(Voucher.sign(key, chain_id, channel_id, amount, nonce)), out)


def _check_payer_side(channel: dict[str, Any], key, amount: int, nonce: int) -> None:
    """Refuse to sign what the channel could never redeem."""
    if channel["status"] == "settled":
        fail(f"CHANNEL_ID: channel {channel['channel_id']} is settled")
    if key.public_key != _channel_key(channel):
        fail(f"--from: not channel {channel['channel_id']}'s voucher key")
    if not channel["redeemed"] <= amount <= channel["deposit"]:
        fail(f"--amount: expected {channel['redeemed']} (redeemed) to {channel['deposit']} (the deposit), "
             f"got {amount}")
    if nonce <= channel["nonce"]:
        fail(f"--nonce: expected above {channel['nonce']} (the newest redeemed), got {nonce}")


def _voucher_send(from_key: str, voucher_path: Optional[str], channel_id: Optional[int], home, node, passphrase_env,
                  timeout_s: float, build, what: str, as_json: bool) -> None:
    """A payee tx carrying a voucher checked first: build(chain_id, key, nonce, voucher) -> tx bytes."""
    key = _keystore_key(home, from_key, passphrase_env)
    url, client = _client(node, home)
    with client:
        with node_errors(url):
            voucher = _checked_voucher(client, voucher_path, channel_id) if voucher_path is not None else None
        result = _submit(client, url, key,
                         lambda chain_id, nonce: _build(lambda c, k, n: build(c, k, n, voucher), chain_id, key, nonce),
                         timeout_s)
    _report(result, what, as_json)


@channel_app.command("redeem")
def channel_redeem(voucher: str = typer.Option(..., "--voucher", help="Voucher JSON file ('-': stdin)"),
                   from_key: str = typer.Option(..., "--from", help="Keystore key of the channel's payee"),
                   timeout_s: float = TimeoutOption, home: Optional[Path] = HomeOption,
                   node: Optional[str] = NodeOption, passphrase_env: Optional[str] = PassphraseEnvOption,
                   as_json: bool = JsonOption) -> None:
    """The payee takes what its newest voucher adds; the channel stays open."""
    from ..sdk import redeem_voucher

    _voucher_send(from_key, voucher, None, home, node, passphrase_env, timeout_s,
                  lambda chain_id, key, nonce, held: redeem_voucher(chain_id, key, nonce, held),
                  "redeemed", as_json)


@channel_app.command("close")
def channel_close(channel_id: int = ChannelArg, voucher: Optional[str] = VoucherOption,
                  from_key: str = typer.Option(..., "--from", help="Keystore key of the channel's payee"),
                  timeout_s: float = TimeoutOption, home: Optional[Path] = HomeOption,
                  node: Optional[str] = NodeOption, passphrase_env: Optional[str] = PassphraseEnvOption,
                  as_json: bool = JsonOption) -> None:
    """The payee settles at once, redeeming its newest voucher first if given."""
    from ..sdk import close_channel

    _voucher_send(from_key, voucher, channel_id, home, node, passphrase_env, timeout_s,
                  lambda chain_id, key, nonce, held: close_channel(chain_id, key, nonce, channel_id, held),
                  f"channel {channel_id} settled", as_json)
