"""The node's CSMS redeems on chain by itself: at Ended, one channel_redeem per channel and round, once.

A node with [charging] enabled (in process, solo engine), an ocpp-package charge point and a paying
vehicle over real WebSockets; the operator's balance grows by exactly what was billed, the
channel shows the rest of the deposit, and a restart (or a lost note in the store) redeems nothing twice.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from cityledger.core.accounts import get_nonce
from cityledger.core.keys import SCHEME_P256, PrivateKey
from cityledger.modules.bank import Transfer
from cityledger.modules.bank.handlers import get_balance
from cityledger.modules.payments import OpenChannel, get_channel
from cityledger.modules.payments.handlers import get_counter
from cityledger.modules.payments.keys import NEXT_CHANNEL_ID_KEY
from cityledger.node.charging import open_registry
from cityledger.node.home import init_home, load_config, load_key
from cityledger.node.runner import Node
from cityledger.offchain.charging import ChannelTerms
from cityledger.offchain.charging.redeem import redeem_round
from cityledger.offchain.identity.ledger import NodeLedger
from cityledger.tools.sim_charging import Progress, SimVehicle, close_charger, connect_charger, drive_charger

pytestmark = pytest.mark.slow
DEPOSIT = 30_000_000
GUARD_S = 60  # only keeps a broken test from hanging


def _on_csms(node: Node, coroutine):
    """Run a coroutine on the CSMS's own loop (its state is that thread's) and return its result."""
    return asyncio.run_coroutine_threadsafe(coroutine, node.charging._loop).result(GUARD_S)


async def _authorize(node: Node, terms: ChannelTerms) -> str:
    return node.charging.csms.authorize_vehicle(terms)


def _state(node: Node):
    ledger = NodeLedger(node)
    return ledger.state_at(ledger.height())


def _until(check) -> None:
    deadline = time.monotonic() + GUARD_S
    while not check():
        assert time.monotonic() < deadline, "not reached within the guard"
        time.sleep(0.1)


async def _sessions(port: int, password: str, token: str, vehicle: PrivateKey, chain_id: str, channel_id: int,
                    sessions: int) -> Progress:
    base = f"ws://127.0.0.1:{port}"
    progress = Progress()
    async with SimVehicle(base, token, vehicle, chain_id, channel_id) as client:
        link = await connect_charger(base, "CP-1", password)
        try:
            await drive_charger(link, client, token, sessions, 3, progress)
        finally:
            await close_charger(link)
    return progress


def test_node_csms_redeems_the_final_voucher_by_itself_once(tmp_path):
    home = tmp_path / "home"
    init_home(home, chain_id="redeem-city-1", issuers=False)
    config_path = home / "config.toml"
    config_path.write_text(config_path.read_text().split("[charging]")[0] + "[charging]\nenabled = true\nport = 0\n")
    password = open_registry(home).add_charger("CP-1", "operator")
    operator = load_key(home / "node_key.json").address()
    funder, vehicle = load_key(home / "keys/car-maker.json"), PrivateKey.generate(SCHEME_P256)
    node = Node(load_config(home))
    node.start()
    try:
        ledger = NodeLedger(node)
        ledger.send([funder], [Transfer(vehicle.address(), DEPOSIT)]).raise_for_error()
        ledger.send([vehicle], [OpenChannel(operator, DEPOSIT, 10, vehicle.public_key)]).raise_for_error()
        channel_id = get_counter(_state(node), NEXT_CHANNEL_ID_KEY)
        before = get_balance(_state(node), operator)
        terms = ChannelTerms("redeem-city-1", channel_id, vehicle.public_key, DEPOSIT)
        token = _on_csms(node, _authorize(node, terms))
        progress = asyncio.run(_sessions(node.charging.port, password, token, vehicle, "redeem-city-1", channel_id, 2))
        billed = progress.billed_micro
        assert progress.sessions == 2 and 0 < billed < DEPOSIT
        _until(lambda: get_channel(_state(node), channel_id).redeemed == billed)
        state = _state(node)
        assert get_balance(state, operator) - before == billed
        channel = get_channel(state, channel_id)
        assert channel.deposit - channel.redeemed == DEPOSIT - billed
        redeems = get_nonce(state, operator)
        assert 1 <= redeems <= 2  # one per channel per round: never more than one per session
        _until(lambda: not node.charging.csms.sessions)  # paid, redeemed: forgotten
    finally:
        node.stop()
    node = Node(load_config(home))  # a restart: the store knows what the chain redeemed
    node.start()
    try:
        book = node.charging.csms.books[token]
        assert (book.terms.redeemed, book.terms.nonce) == (billed, book.newest.nonce)
        assert _on_csms(node, redeem_round(node.charging.csms)) == 0
        book.terms = terms  # as if the store's note of the redeem was lost: the chain is asked first
        assert _on_csms(node, redeem_round(node.charging.csms)) == 1
        assert get_nonce(_state(node), operator) == redeems and book.terms.redeemed == billed
    finally:
        node.stop()
