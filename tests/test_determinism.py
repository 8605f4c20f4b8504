"""Determinism: two nodes given the same blocks reach the same app hash; handlers use no clock,
randomness, floats or network."""

import re
from pathlib import Path

from cityledger.modules.bank import MultiSend, Output, Transfer

from helpers import make_chain

MODULES = Path(__file__).parents[1] / "src" / "cityledger" / "modules"
FORBIDDEN = [r"^\s*import (time|random|socket|datetime|secrets|uuid)\b", r"^\s*from (time|random|socket|datetime|secrets|uuid) import",
             r"\bfloat\(", r"\bos\.urandom\b", r"\bhttpx\b", r"\brequests\b"]


def test_two_nodes_same_blocks_same_app_hashes(tmp_path):
    one, two = make_chain(tmp_path / "one"), make_chain(tmp_path / "two")
    for chain in (one, two):
        a, b, c, d = chain.accounts
        blocks = [
            [chain.tx(a, Transfer(b.address(), 5)), chain.tx(b, Transfer(c.address(), 7))],
            [chain.tx(c, MultiSend([Output(d.address(), 1), Output(a.address(), 2)])),
             chain.tx(d, Transfer(a.address(), 10**12))],  # this one fails: insufficient funds
            [],
            [chain.tx(a, Transfer(d.address(), 3))],
        ]
        chain.hashes = [chain.block(*txs).app_hash for txs in blocks]
    assert one.hashes == two.hashes
    assert one.hashes[2] == one.hashes[1]  # an empty block changes no state
    assert len(set(one.hashes)) == 3


def test_state_root_is_independent_of_write_order(tmp_path):
    one, two = make_chain(tmp_path / "one"), make_chain(tmp_path / "two")
    a, b, c, _ = one.accounts
    r1 = one.block(one.tx(a, Transfer(b.address(), 1)), one.tx(c, Transfer(b.address(), 1))).app_hash
    r2 = two.block(two.tx(c, Transfer(b.address(), 1)), two.tx(a, Transfer(b.address(), 1))).app_hash
    assert r1 == r2  # commutative transfers: same final state, same root


def test_modules_read_no_clock_randomness_floats_or_network():
    offenders = []
    for path in sorted(MODULES.rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if any(re.search(pattern, line) for pattern in FORBIDDEN):
                offenders.append(f"{path.relative_to(MODULES)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
