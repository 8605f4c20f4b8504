"""A hosted office's registries: size from issuer.toml, the next one prepared in the background and sealed.

A live node (uvicorn in a thread) whose ID office has registries of 8 (7 credentials each).
"""

from __future__ import annotations

import logging
import re

import pytest
from typer.testing import CliRunner

from test_api_helpers import LiveServer, make_node
from test_identity_fixtures import fast_cred_defs
from test_issuer_revocation import Office
from cityledger.cli.main import app
from cityledger.node.issuers import IssuerConfigError, load_issuer_config
from cityledger.node.runner import Node
from cityledger.offchain.identity import RESIDENT_ID


def _set_size(folder, size) -> None:
    config = folder / "issuer.toml"
    config.write_text(re.sub(r"registry_size = .*", f"registry_size = {size}", config.read_text()))


def test_registry_size_is_read_from_issuer_toml_and_checked(tmp_path):
    tn = make_node(tmp_path)
    folder = tn.home / "issuers" / "id-office"
    assert load_issuer_config(folder).registry_size == 64  # tests/conftest.py: init writes a small size
    for bad in ("0", "3", "131073", '"big"', "1.5"):
        _set_size(folder, bad)
        try:
            load_issuer_config(folder)
            raise AssertionError(f"registry_size = {bad} was accepted")
        except IssuerConfigError as exc:
            assert "registry_size: expected an integer from 4 to 131072" in str(exc)
    _set_size(folder, 8)
    assert {t.max_cred_num for t in load_issuer_config(folder).credential_types} == {8}


@pytest.mark.slow
def test_the_next_registry_is_prepared_in_the_background_logged_and_sealed(tmp_path, caplog):
    tn = make_node(tmp_path)
    _set_size(tn.home / "issuers" / "id-office", 8)
    restarted = Node(tn.node.config)  # reads issuer.toml as it is now
    with LiveServer(restarted) as server, fast_cred_defs(), \
            caplog.at_level(logging.INFO, logger="cityledger.offchain.identity.issuer"):
        city = Office(tn, server, tmp_path)
        result = CliRunner().invoke(app, ["issuer", "publish", "--issuer", "id-office", "--type", RESIDENT_ID,
                                          "--home", str(tn.home), "--node", server.url])
        assert result.exit_code == 0, result.output
        assert city.public.get_issuer(city.did)["registry_size"] == 8
        first = city.public.get_issuer(city.did)["published"][RESIDENT_ID]["rev_reg_id"]
        assert "rev_reg_id" in result.output and first
        for number in range(6):  # 6 of 7: past PREPARE_NEXT_AT_PERCENT
            city.resident(f"R{number}")
        _wait_for_log(caplog, "registry .* ready")
        assert any("creating a resident-id revocation registry: 100%" in r.getMessage() for r in caplog.records)
        city.resident("R6")  # the last index of the first registry
        city.resident("R7")  # the next registry, already anchored: nobody waited for it
        assert city.public.get_issuer(city.did)["published"][RESIDENT_ID]["rev_reg_id"] != first
        assert city.verifies(city.wallet("R0")) and city.verifies(city.wallet("R7"))
    again = Node(tn.node.config)
    with LiveServer(again) as server:
        city = Office(tn, server, tmp_path)
        assert city.office.revoke(city.did, ["R0", "R7"])["revoked"] == 2  # both registries, from the sealed state
        assert not city.verifies(city.wallet("R0")) and not city.verifies(city.wallet("R7"))


def _wait_for_log(caplog, pattern: str) -> None:
    """Wait (bounded by the test's own timeout, no clock assertion) for the background thread's log line."""
    import threading

    for thread in threading.enumerate():
        if thread.name.startswith("prepare-registry"):
            thread.join()
    assert any(re.search(pattern, r.getMessage()) for r in caplog.records)
