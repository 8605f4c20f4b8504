"""The vault service's access log on its own: a durable per-owner hash chain, signed entries, the logs due
an anchor, and verify_log refusing every way a log can lie (left out, changed, reordered, cut, forged)."""

from __future__ import annotations

import msgspec
import pytest

from cityledger.core.keys import PrivateKey
from cityledger.modules.consent import ZERO_HEAD
from cityledger.offchain.vaults.accesslog import AccessLog, LogBroken, SignedEntry, verify_log

SERVICE = "did:city:vault-test"
OWNER, OTHER = "city" + "11" * 20, "city" + "22" * 20


@pytest.fixture
def log(tmp_path):
    opened = AccessLog(tmp_path / "log.sqlite", SERVICE, PrivateKey(1, b"\x05" * 32))
    yield opened
    opened.close()


def _read(log: AccessLog, owner: str = OWNER, n: int = 1) -> SignedEntry:
    return log.append(owner, "read", "did:city:insurer", "insurance-pricing", 3, "ds-" + "ab" * 16,
                      [bytes([n]) * 32], 0, 100 + n, 1_800_000_000 + n)


def test_entries_chain_per_owner_and_survive_reopening(log, tmp_path):
    first, second = _read(log, n=1), _read(log, n=2)
    other = _read(log, OTHER)
    assert (first.entry.seq, first.entry.previous) == (1, ZERO_HEAD)
    assert (second.entry.seq, second.entry.previous) == (2, first.hash)
    assert other.entry.seq == 1 and log.head(OWNER) == (2, second.hash)
    log.close()
    again = AccessLog(tmp_path / "log.sqlite", SERVICE, PrivateKey(1, b"\x05" * 32))
    assert again.entries(OWNER) == [first, second] and again.head(OTHER) == (1, other.hash)
    again.close()


def test_logs_due_an_anchor_until_the_ledger_took_them(log):
    _read(log), _read(log, OTHER)
    assert log.due(64) == sorted([OWNER, OTHER]) and log.due(1) == [min(OWNER, OTHER)]
    log.mark_anchored([(OWNER, 1)])
    assert log.due(64) == [OTHER]
    _read(log, n=2)
    assert log.due(64) == sorted([OWNER, OTHER])


def test_a_kind_outside_the_list_is_refused_and_nothing_written(log):
    with pytest.raises(ValueError, match="kind"):
        log.append(OWNER, "peek", "did:city:x", "", 0, "", [], 0, 1, 1)
    assert log.head(OWNER) == (0, ZERO_HEAD)


def test_verify_log_refuses_every_lie(log):
    key = PrivateKey(1, b"\x05" * 32).public_key
    entries = [_read(log, n=n) for n in range(1, 5)]
    anchors = [(2, entries[1].hash), (4, entries[3].hash)]
    assert verify_log(entries, SERVICE, [key], anchors, OWNER) == entries[3].hash
    changed = msgspec.structs.replace(entries[2].entry, purpose="research")
    lies = {
        "left out": entries[:2] + entries[3:],
        "reordered": [entries[1], entries[0], *entries[2:]],
        "cut": entries[:3],
        "changed": entries[:2] + [SignedEntry(changed, entries[2].hash, entries[2].signature)] + entries[3:],
        "forged": entries[:3] + [SignedEntry(entries[3].entry, entries[3].hash, bytes(64))],
        "another owner's": [_read(log, OTHER)],
    }
    for name, lie in lies.items():
        with pytest.raises(LogBroken):
            verify_log(lie, SERVICE, [key], anchors, OWNER)
        assert name
    with pytest.raises(LogBroken, match="signature"):
        verify_log(entries, SERVICE, [PrivateKey(1, b"\x06" * 32).public_key], anchors, OWNER)
    with pytest.raises(LogBroken, match="anchor"):
        verify_log(entries, SERVICE, [key], [(2, entries[0].hash)], OWNER)
