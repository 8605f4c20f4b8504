"""The module vectors replayed on the app: pre-state, one transaction, then the outcome and post-state."""

from __future__ import annotations

import pytest

from cityledger.core.errors import TX
from cityledger.node.modules import default_modules

from module_vectors import MODULE_NAMES, all_cases, case_of, expected_outcome, registered, replay_pre, vectors_of

CASES = all_cases()


@pytest.mark.parametrize("module, name", CASES, ids=[f"{m}/{n}" for m, n in CASES])
def test_vector_on_the_app(tmp_path, module, name):
    vectors, case = vectors_of(module), case_of(module, name)
    replay = replay_pre(vectors, case, tmp_path / "app.sqlite")
    outcome = replay.deliver(vectors.step(case["tx"]))
    ok, error = expected_outcome(case)
    assert (outcome.ok, outcome.error) == (ok, error)
    if ok:
        assert outcome.events == case["expect"]["events"]
    for query in case["post"]["queries"]:
        assert replay.query(query["path"], query["args"]) == query["result"], query["path"]
    account = case["post"]["account"]
    assert replay.account(vectors.step(case["tx"]).signer_address()) == {"nonce": account["nonce"],
                                                                          "balance": account["balance"]}
    replay.app.check_invariants()


def test_every_module_has_success_and_failure_vectors():
    for module in MODULE_NAMES:
        cases = vectors_of(module).cases
        handled = {entry["type"] for case in cases for entry in case["tx"]["messages"]}
        assert any("error" in case["expect"] for case in cases) and any("ok" in case["expect"] for case in cases)
        assert all(case["name"].startswith("invalid_") for case in cases if "error" in case["expect"]), module
        assert handled, module


def test_every_message_type_has_a_success_vector():
    succeeded = {entry["type"] for module in MODULE_NAMES for case in vectors_of(module).cases
                 if "ok" in case["expect"] for entry in case["tx"]["messages"]}
    for module in default_modules():
        for kind in module.handlers:
            assert kind.__struct_config__.tag in succeeded, kind.__name__


def test_vector_errors_are_registered_kinds():
    catalogs = {m.errors.codespace: m.errors for m in default_modules()} | {"tx": TX}
    for module, name in CASES:
        error = case_of(module, name)["expect"].get("error")
        if error is not None:
            codespace, code = registered(error)
            assert catalogs[codespace].codes()[code] == error["name"]


@pytest.mark.parametrize("module", ["bank", "batteries", "governance", "mobility"])
def test_deterministic_vectors_are_what_the_generator_writes_now(tmp_path, module):
    """Vectors without randomised material must be regenerated when the code changes what they record."""
    from make_module_vectors import STORIES

    assert STORIES[module](tmp_path).document() == vectors_of(module).data
