"""The module vectors replayed through the SDK against an in-process node serving its REST API.

The pre-state's transactions and then the case's are signed with cityledger.sdk and submitted one
block at a time; the outcome, the queried values and the sender's account are read back with the
SDK's Client. A refusal at check_tx comes back as TxRejected, one at delivery as a failed result.
Successes get a node of their own; refusals of one pre-state share one, since a refused tx leaves
the state as it was (checked: the height must not move, else the node is not reused).
"""

from __future__ import annotations

import pytest

from cityledger.node import runner

from module_vectors import case_of, expected_outcome, vectors_of
from vector_nodes import Served, quick_cases, submit


@pytest.fixture(scope="module")
def shared():
    """The node of the refusals of the current pre-state, if any."""
    cache: dict[tuple, Served] = {}
    yield cache
    for served in cache.values():
        served.close()


@pytest.fixture(autouse=True)
def quick_start(monkeypatch):
    """Skip the node's GC tuning: it costs a second per node and freezes each test's garbage."""
    monkeypatch.setattr(runner, "tune_gc", lambda: None)


def served_for(shared, tmp_path, module, case) -> tuple[Served, bool]:
    """(node at the case's pre-state, whether it is shared)."""
    if "ok" in case["expect"]:
        return Served(tmp_path, vectors_of(module), case), False
    key = (module, case["pre"]["blocks"])
    if key not in shared:
        for old in list(shared):
            shared.pop(old).close()
        shared[key] = Served(tmp_path, vectors_of(module), case)
    return shared[key], True


@pytest.mark.parametrize("module, name", quick_cases())
def test_vector_through_the_sdk(tmp_path, shared, module, name):
    vectors, case = vectors_of(module), case_of(module, name)
    served, is_shared = served_for(shared, tmp_path, module, case)
    height = served.height()
    try:
        step = vectors.step(case["tx"])
        ok, error, events, _ = submit(served.client, vectors.chain_id, step)
        assert (ok, error) == expected_outcome(case)
        if ok:
            assert events == case["expect"]["events"]
        served.check_post(case, step)
    finally:
        if not is_shared or served.height() != height:  # a committed tx changed the state: not reusable
            if is_shared:
                shared.pop((module, case["pre"]["blocks"]))
            served.close()
