"""The CSMS's own redeem rounds (offchain/charging/redeem.py) through tools/sim_charging's REST settle,
against a real in-process chain (count_txs: the slow bench test).

The node's REST client is stood in for by `ChainClient`, which runs each call on the in-process
chain (check_tx on submit, a block per wait): the txs, their checks and their execution are real.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timezone
from types import SimpleNamespace

from helpers import CHAIN_ID, make_chain
from cityledger import sdk
from cityledger.core.accounts import get_nonce
from cityledger.core.hashing import compute_tx_id
from cityledger.core.keys import SCHEME_P256, PrivateKey
from cityledger.modules.bank import Transfer, get_balance
from cityledger.modules.payments.handlers import get_channel, get_counter
from cityledger.modules.payments.keys import NEXT_CHANNEL_ID_KEY
from cityledger.modules.payments.vouchers import sign_voucher
from cityledger.offchain.charging import ChannelTerms, ChargerRegistry, Csms, Tariff
from cityledger.offchain.charging.accounting import Voucher
from cityledger.offchain.charging.redeem import redeem_round
from cityledger.tools.sim_charging import rest_settle

TARIFF = Tariff(per_kwh_micro=300_000)
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


@dataclass
class Result:
    tx_id: str
    ok: bool
    code: int
    log: str


class ChainClient:
    """The Client calls rest_settle makes, run on an in-process chain."""

    def __init__(self, chain) -> None:
        self.chain, self.pending, self.committed, self.blocks = chain, [], {}, {}

    def get_nonce(self, address) -> int:
        return get_nonce(self.chain.store, address)

    def submit_batch(self, txs):
        results = []
        for tx in txs:
            check = self.chain.app.check_tx(tx)
            results.append(Result(compute_tx_id(tx).hex(), check.code == 0, check.code, check.log))
            if check.code == 0:
                self.pending.append(tx)
        return SimpleNamespace(results=results)

    def wait(self, tx_id, timeout_s):
        if self.pending:
            txs, self.pending = self.pending, []
            block = self.chain.block(*txs)
            ids = [compute_tx_id(tx).hex() for tx in txs]
            self.blocks[self.chain.height] = SimpleNamespace(
                tx_ids=ids, results=[SimpleNamespace(ok=r.code == 0, log=r.log) for r in block.tx_results])
            self.committed.update({i: self.chain.height for i in ids})
        return SimpleNamespace(committed=tx_id in self.committed, height=self.committed.get(tx_id))

    def get_tx(self, tx_id):
        return SimpleNamespace(height=self.committed[tx_id])

    def get_block(self, height):
        return self.blocks[height]


class Point:
    """What the CSMS needs of a charger's link here: an id, and calls that go nowhere."""

    id = "CP-1"

    async def send_cost(self, session_id, cost_micro):
        return None

    async def send_stop(self, session_id):
        return None


def _open(chain, vehicle, operator, deposit: int) -> int:
    tx = sdk.open_channel(CHAIN_ID, vehicle, 0, operator.address(), deposit, 5)
    assert chain.block(tx).tx_results[0].code == 0
    return get_counter(chain.store, NEXT_CHANNEL_ID_KEY)


def _session(csms, token, session_id, kwh, vehicle, channel_id, nonce):
    """A session of `kwh` on the point, paid in full by one voucher; its bill."""
    point = Point()
    csms.open_session(point, session_id, token, 0, T0)
    csms.advance(point, session_id, None, kwh * 1000, T0, ended=True)
    owed = csms.sessions[session_id].base_micro + csms.sessions[session_id].cost_micro
    voucher = Voucher(channel_id, owed, nonce, sign_voucher(vehicle, CHAIN_ID, channel_id, owed, nonce))
    assert csms.accept_voucher(token, voucher) is not None  # paid: a receipt
    return csms.sessions[session_id].cost_micro


def test_redeem_rounds_redeem_each_channels_newest_voucher_once_and_forget_what_they_settled(tmp_path):
    chain = make_chain(tmp_path)
    operator = chain.accounts[3]
    vehicles = [PrivateKey(SCHEME_P256, bytes([40 + i]) * 32) for i in range(2)]
    for vehicle in vehicles:
        assert chain.block(chain.tx(chain.accounts[0], Transfer(vehicle.address(), 50_000_000))).tx_results[0].code == 0
    channels = [_open(chain, vehicle, operator, 40_000_000) for vehicle in vehicles]
    before = get_balance(chain.store, operator.address())

    async def scenario():
        csms = Csms(ChargerRegistry(), TARIFF, operator)
        tokens = [csms.authorize_vehicle(ChannelTerms(CHAIN_ID, c, v.public_key, 40_000_000))
                  for c, v in zip(channels, vehicles)]
        csms.settle = rest_settle(ChainClient(chain), CHAIN_ID, operator)
        # Two sessions on the first vehicle's channel, one on the second's, before the first round.
        bills = [_session(csms, tokens[0], "s1", 3, vehicles[0], channels[0], 1),
                 _session(csms, tokens[0], "s2", 2, vehicles[0], channels[0], 2),
                 _session(csms, tokens[1], "s3", 5, vehicles[1], channels[1], 1)]
        first = await redeem_round(csms)
        again = await redeem_round(csms)
        bills.append(_session(csms, tokens[1], "s4", 1, vehicles[1], channels[1], 2))
        third = await redeem_round(csms)
        return csms, bills, (first, again, third)

    csms, bills, rounds = asyncio.run(scenario())
    # One redeem per channel with a newer voucher: 2, then nothing new, then the second channel only.
    assert rounds == (2, 0, 1) and csms.redeemed_txs == 3
    assert get_nonce(chain.store, operator.address()) == 3
    assert get_balance(chain.store, operator.address()) == before + sum(bills)
    assert get_channel(chain.store, channels[0]).redeemed == bills[0] + bills[1]
    assert get_channel(chain.store, channels[1]).redeemed == bills[2] + bills[3]
    # Every session is settled on chain, so the CSMS holds none of them any more.
    assert csms.sessions == {}


def test_a_round_waits_for_the_session_to_end_and_does_not_retry_a_refused_redeem():
    vehicle = PrivateKey(SCHEME_P256, b"\x33" * 32)
    calls = []

    async def scenario():
        csms = Csms(ChargerRegistry(), TARIFF, PrivateKey.generate())
        token = csms.authorize_vehicle(ChannelTerms(CHAIN_ID, 9, vehicle.public_key, 40_000_000))
        # A stand-in chain that refuses every redeem (this test is about the rounds, not the chain).
        csms.settle = lambda items: calls.append(items) or ["payments/9 channel settled"] * len(items)
        point = Point()
        csms.open_session(point, "s1", token, 0, T0)
        csms.advance(point, "s1", None, 2_000, T0)
        owed = csms.sessions["s1"].cost_micro
        csms.accept_voucher(token, Voucher(9, owed, 1, sign_voucher(vehicle, CHAIN_ID, 9, owed, 1)))
        open_round = await redeem_round(csms)  # paid so far, but the session is open: nothing yet
        csms.advance(point, "s1", None, 2_000, T0, ended=True)
        refused = await redeem_round(csms)
        retried = await redeem_round(csms)
        return csms, token, (open_round, refused, retried)

    csms, token, rounds = asyncio.run(scenario())
    assert rounds == (0, 0, 0) and len(calls) == 1 and calls[0][0][1].nonce == 1  # asked once, at the end
    assert csms.books[token].terms.nonce == 0 and "s1" in csms.sessions  # the chain holds nothing: kept


def test_an_ended_session_left_unpaid_is_redeemed_after_the_grace_with_what_was_paid():
    import time

    from cityledger.offchain.charging.redeem import FINAL_VOUCHER_GRACE_S

    vehicle = PrivateKey(SCHEME_P256, b"\x34" * 32)
    calls = []

    async def scenario():
        csms = Csms(ChargerRegistry(), TARIFF, PrivateKey.generate(), margin_micro=10_000_000)
        token = csms.authorize_vehicle(ChannelTerms(CHAIN_ID, 9, vehicle.public_key, 40_000_000))
        csms.settle = lambda items: calls.append(items) or [None] * len(items)  # a chain that takes every redeem
        point = Point()
        csms.open_session(point, "s1", token, 0, T0)
        csms.advance(point, "s1", None, 2_000, T0)
        paid = csms.sessions["s1"].cost_micro
        csms.accept_voucher(token, Voucher(9, paid, 1, sign_voucher(vehicle, CHAIN_ID, 9, paid, 1)))
        csms.advance(point, "s1", None, 5_000, T0, ended=True)  # the vehicle never pays this last cost
        now = time.time()
        waiting = await redeem_round(csms, now)
        late = await redeem_round(csms, now + FINAL_VOUCHER_GRACE_S + 1)
        return csms, token, paid, (waiting, late)

    csms, token, paid, rounds = asyncio.run(scenario())
    assert rounds == (0, 1) and [(t.channel_id, v.amount) for t, v in calls[0]] == [(9, paid)]
    assert csms.books[token].terms.redeemed == paid and "s1" not in csms.sessions  # given up on, forgotten
