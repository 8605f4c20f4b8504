"""`cityledger charging simulate` against a node process with [charging] enabled, end to end.

The CLI sets vehicles up as real ones (registered, bound, a registration credential from the hosted
transport office, a spending policy, a channel), authorises them at the node's CSMS and drives
sessions with ocpp-package charge points; the node's CSMS redeems on its own. Then the balances
are checked from the chain, and the node's whole store (every block, all state, its database
files) is scanned for the exact meter readings and session times the run sent: none is there.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from test_api_helpers import NodeProcess, free_port
from test_privacy_identity import dump_ledger
from cityledger.cli.main import app
from cityledger.node.home import init_home, load_config
from cityledger.node.runner import Node

pytestmark = pytest.mark.slow  # a node process and AnonCreds credentials: tens of seconds


def simulate(home, node, *args: str) -> dict:
    result = CliRunner().invoke(app, ["charging", "simulate", *args, "--home", str(home), "--node", node.url,
                                      "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def forms(value: int | str) -> list[bytes]:
    """How a reading or time could sit in the store: decimal text, and msgpack's integer encoding."""
    text = str(value).encode()
    found = [text]
    if isinstance(value, int):
        found.append(b"\xce" + value.to_bytes(4, "big") if value < 2**32 else b"\xcf" + value.to_bytes(8, "big"))
    return found


def occurrences(dump: bytes, form: bytes) -> int:
    """How often `form` occurs; a decimal one only where it stands alone (not inside a longer number)."""
    if form.isdigit():
        return len(re.findall(rb"(?<![0-9])" + re.escape(form) + rb"(?![0-9])", dump))
    return dump.count(form)


def test_simulate_settles_every_session_on_chain_and_leaves_no_reading_there(tmp_path):
    home = tmp_path / "home"
    port, csms_port = free_port(), free_port()
    init_home(home, chain_id="simulate-city-1", port=port)
    config = home / "config.toml"
    config.write_text(config.read_text().split("[charging]")[0] + f"[charging]\nenabled = true\nport = {csms_port}\n")
    node = NodeProcess(home, port=port).start()
    try:
        first = simulate(home, node, "--chargers", "2", "--vehicles", "2", "--sessions", "4", "--readings", "3",
                         "--record", str(tmp_path / "run1.json"))
        assert first["sessions"] == 4 and first["balanced"] and first["billed_micro"] > 0
        assert first["operator_gain_micro"] == first["billed_micro"]
        assert first["onchain"]["redeems"] <= 4 and first["onchain"]["opens"] == 0  # channels opened at set-up
        assert sum(c["redeemed"] for c in first["channels"].values()) == first["billed_micro"]
        assert all(c["balance"] == c["deposit"] - c["redeemed"] for c in first["channels"].values())
        # A second run reuses the set-up (cached): its only txs are the CSMS's redeems.
        second = simulate(home, node, "--chargers", "1", "--vehicles", "2", "--sessions", "2", "--readings", "3",
                          "--record", str(tmp_path / "run2.json"))
        assert second["balanced"] and second["channels"].keys() == first["channels"].keys()
        assert second["onchain_txs"] == second["onchain"]["redeems"] <= 2
        assert first["setup_onchain"]["opens"] == 2 and second["setup_onchain"]["opens"] == 0
        assert second["setup_onchain"]["other"] == second["setup_onchain"]["top_ups"] == 0
    finally:
        assert node.stop() == 0, node.log.read_text()[-2000:]
    stopped = Node(load_config(home))
    try:
        dump = dump_ledger(SimpleNamespace(ledger=SimpleNamespace(store=stopped.store)))
    finally:
        stopped.charging.store.close()
        stopped.store.close()
    sent = [json.loads((tmp_path / f"run{i}.json").read_text()) for i in (1, 2)]
    readings = {wh for run in sent for wh in run["readings_wh"]}
    times = {t for run in sent for t in run["times"]}
    seconds = {int(datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp()) for t in times}
    assert len(readings) >= 25 and len(times) >= 25 and len(dump) > 10_000  # 6 sessions of 5 events
    # The scan works on this dump: the amount the chain redeemed (public) is found in it.
    assert any(occurrences(dump, form) for form in forms(max(c["redeemed"] for c in first["channels"].values())))
    leaked = [(value, form) for value in [*readings, *times, *seconds] for form in forms(value)
              if occurrences(dump, form)]
    assert leaked == []
