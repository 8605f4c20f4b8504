"""The access log's group commit: appends queued during a commit share the next one; a read answers once logged."""

import sqlite3
import threading

import pytest

from passport_example import PASSPORT_ID, example

from cityledger.offchain.passport.accesslog import GroupCommitter
from cityledger.offchain.passport.store import DB_FILE, PassportStore, new_master_key
from cityledger.offchain.passport.types import PassportError


@pytest.mark.parametrize("max_group, expected", [(4096, [["a"], ["b", "c", "d"]]),
                                                 (2, [["a"], ["b", "c"], ["d"]]),
                                                 (1, [["a"], ["b"], ["c"], ["d"]])])
def test_appends_queued_during_a_commit_share_the_next_commit(max_group, expected):
    gate, entered, writes = threading.Event(), threading.Event(), []

    def write(reads):  # a stand-in for the store's transaction: the first one waits at the gate
        writes.append(list(reads))
        entered.set()
        gate.wait()

    committer = GroupCommitter(write, max_group=max_group)
    first = committer.submit(["a"])
    assert entered.wait(10)
    queued = [committer.submit([name]) for name in ("b", "c", "d")]  # all while "a" is being committed
    gate.set()
    for ticket in (first, *queued):
        ticket.wait()
    committer.close()
    assert writes == expected


def test_a_failed_commit_fails_each_of_its_waiters_and_the_next_commit_goes_on():
    calls = []

    def write(reads):
        calls.append(reads)
        if len(calls) == 1:
            raise sqlite3.OperationalError("disk I/O error")

    committer = GroupCommitter(write)
    with pytest.raises(sqlite3.OperationalError):
        committer.submit(["a"]).wait()
    committer.submit(["b"]).wait()
    committer.close()
    assert calls == [["a"], ["b"]]
    with pytest.raises(PassportError):
        committer.submit(["c"])


def test_concurrent_restricted_reads_are_each_logged_once_in_one_chain(tmp_path):
    store = PassportStore(tmp_path, new_master_key())
    store.put_document(example())
    readers = [f"did:city:reader{index}" for index in range(12)]

    def read(reader):
        store.read_tier(PASSPORT_ID, "legitimate", proof_ok=True, reader_did=reader, height=1, time_s=1)

    threads = [threading.Thread(target=read, args=(reader,)) for reader in readers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    entries = store.get_log(PASSPORT_ID)
    assert sorted(entry.reader_did for entry in entries) == sorted(readers)
    assert [entry.seq for entry in entries] == list(range(1, 13))
    assert store.verify_log(PASSPORT_ID) == store.get_log_head(PASSPORT_ID)[1]
    store.close()


def test_a_read_is_durable_when_it_returns(tmp_path):
    store = PassportStore(tmp_path, new_master_key())
    store.put_document(example())
    store.export(PASSPORT_ID, "authority", proof_ok=True, reader_did="did:city:auditor", height=3, time_s=4)
    # Another connection (another process would see the same): both restricted tiers are there already.
    with sqlite3.connect(tmp_path / DB_FILE) as other:
        rows = other.execute("SELECT tier, reader_did FROM passport_log WHERE passport_id = ? ORDER BY seq",
                             (PASSPORT_ID,)).fetchall()
    assert rows == [("legitimate", "did:city:auditor"), ("authority", "did:city:auditor")]
    store.close()
