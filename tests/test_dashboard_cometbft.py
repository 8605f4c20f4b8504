"""Validators up under CometBFT: a one-validator node whose app runs in this process (CometEngine).

The dashboard's validators answer is read from the commit signatures that CometBFT itself hands
the app in FinalizeBlock (decided_last_commit), through the node's real engine and NodeService.
"""

from __future__ import annotations

import hashlib
import time

import pytest

from test_cometbft_network import _comet_node
from cityledger.api.explorer.dashboard import validators_chart
from cityledger.api.metrics import ApiMetrics, read_engine
from cityledger.api.service import NodeService
from cityledger.engines.cometbft.setup import NodePorts, allocate_ports
from cityledger.node.home import init_home, load_key

pytestmark = [pytest.mark.cometbft, pytest.mark.slow]

MAX_WAIT_S = 90  # a hang guard for CometBFT's first blocks on a loaded machine, not a speed bound
COMMITS = 3


def test_validators_up_come_from_the_commits_cometbft_hands_the_app(tmp_path):
    home = tmp_path / "home"
    init_home(home, chain_id="city-votes-1", members=1, issuers=False)
    node = _comet_node(home, NodePorts(*allocate_ports(3)))
    node.start()
    try:
        deadline = time.monotonic() + MAX_WAIT_S
        while len(node.engine.recent_commits(COMMITS)) < COMMITS:
            assert time.monotonic() < deadline, "CometBFT committed no blocks"
            time.sleep(0.1)
        answer = validators_chart(NodeService(node, ApiMetrics(lambda: read_engine(node))), COMMITS)
    finally:
        node.stop()
    own = load_key(home / "node_key.json").public_key.key
    assert (answer.engine, answer.source, len(answer.heights)) == ("cometbft", "votes", COMMITS)
    assert answer.heights == sorted(answer.heights) and answer.heights[-1] < answer.height + 1
    [validator] = answer.validators
    assert validator.address == hashlib.sha256(own).digest()[:20].hex().upper()
    assert (validator.signed, validator.up, answer.up) == (COMMITS, True, 1)
    assert answer.signed_power == [answer.total_power] * COMMITS
