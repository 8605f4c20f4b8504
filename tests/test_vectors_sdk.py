"""The module vectors replayed through the SDK against an in-process node serving its REST API.

The pre-state's transactions and then the case's are signed with cityledger.sdk and submitted one
block at a time; the outcome, the queried values and the sender's account are read back with the
SDK's Client. A refusal at check_tx comes back as TxRejected, one at delivery as a failed result.
Successes get a node of their own; refusals of one pre-state share one (vector_nodes.NodePool).
"""

from __future__ import annotations

import pytest

from cityledger.node import runner

from module_vectors import case_of, expected_outcome, vectors_of
from vector_nodes import NodePool, quick_cases, submit


@pytest.fixture(scope="module")
def pool():
    nodes = NodePool()
    yield nodes
    nodes.close()


@pytest.fixture(autouse=True)
def quick_start(monkeypatch):
    """Skip the node's GC tuning: it costs a second per node and freezes each test's garbage."""
    monkeypatch.setattr(runner, "tune_gc", lambda: None)


@pytest.mark.parametrize("module, name", quick_cases())
def test_vector_through_the_sdk(tmp_path, pool, module, name):
    vectors, case = vectors_of(module), case_of(module, name)
    served = pool.get(tmp_path, module, case)
    height = served.height()
    try:
        step = vectors.step(case["tx"])
        ok, error, events, _ = submit(served.client, vectors.chain_id, step)
        assert (ok, error) == expected_outcome(case)
        if ok:
            assert events == case["expect"]["events"]
        served.check_post(case, step)
    finally:
        pool.done(served, height)
