"""Publishing is asynchronous: POST /issuers/{did}/publish answers 202 at once, the node works in the background.

A live node's ID office publishes Resident ID while its first registry's creation is held at a
gate (a quarter of the tails file reported written), so each test sees the publication preparing,
whatever the machine's speed; the registry itself is the real one (64 credentials, conftest.py).
"""

from __future__ import annotations

import json
import threading
import time

import httpx
import msgspec
import pytest

from test_api_helpers import LiveServer, make_node
from test_identity_fixtures import fast_cred_defs
from test_issuer_revocation import Office
from cityledger.node.issuers import PUBLISHING_FILE
from cityledger.node.runner import Node
from cityledger.offchain.identity import RESIDENT_ID
from cityledger.offchain.identity.issuer import IssuerService
from cityledger.sdk import ApiError, PublicationError
from cityledger.wire import PublicationView


class Gate:
    """Holds every registry creation until opened, after reporting a quarter of it; counts them."""

    def __init__(self, monkeypatch) -> None:
        self.open = threading.Event()
        self.calls = 0
        self.fail: BaseException | None = None
        real = IssuerService._create_registry_files

        def gated(service, published, tag, progress):
            self.calls += 1
            progress(0.25)
            self.open.wait()
            if self.fail is not None:
                raise self.fail
            return real(service, published, tag, progress)

        monkeypatch.setattr(IssuerService, "_create_registry_files", gated)


@pytest.fixture
def gate(monkeypatch):
    gate = Gate(monkeypatch)
    yield gate
    gate.open.set()  # never leave a publication thread waiting


def _post_publish(city: Office) -> httpx.Response:
    return httpx.post(f"{city.url}/issuers/{city.did}/publish", json={"credential_type": RESIDENT_ID},
                      headers={"authorization": f"Bearer {city.token}"}, timeout=30)


def _until(read, wanted):
    """Poll `read()` until `wanted(value)` (a bounded wait for a background thread, not a timed assertion)."""
    for _ in range(600):
        value = read()
        if wanted(value):
            return value
        time.sleep(0.05)
    raise AssertionError(f"never reached: last {value}")


def _state(city: Office) -> dict:
    return city.public.get_publication(city.did, RESIDENT_ID)


def test_publish_answers_202_at_once_shows_progress_and_completes(tmp_path, gate):
    tn = make_node(tmp_path)
    with LiveServer(tn.node) as server, fast_cred_defs():
        city = Office(tn, server, tmp_path)
        assert _state(city)["state"] == "unpublished"
        answer = _post_publish(city)  # the registry is held at the gate: this answer cannot wait for it
        assert answer.status_code == 202, answer.text
        view = msgspec.json.decode(answer.content, type=PublicationView)
        assert msgspec.to_builtins(view) == answer.json()  # exactly the wire Struct's fields
        assert view.state == "preparing" and view.rev_reg_id == ""
        assert (tn.home / "issuers" / "id-office" / PUBLISHING_FILE).exists()
        state = _until(lambda: _state(city), lambda s: s["percent"] == 25)
        assert state["state"] == "preparing" and state["step"] == "registry"
        assert city.public.get_issuer(city.did)["preparing"] == {RESIDENT_ID: 25}
        again = city.office.publish(city.did, RESIDENT_ID, wait=False)
        assert again["state"] == "preparing" and gate.calls == 1  # a second POST started nothing
        with pytest.raises(ApiError) as early:
            city.office.create_offer(city.did, RESIDENT_ID, {}, "EARLY-1")
        assert early.value.status == 400 and "not published" in early.value.message
        gate.open.set()
        seen: list[str] = []
        done = city.office.publish(city.did, RESIDENT_ID, on_progress=lambda s: seen.append(s["state"]))
        assert done["state"] == "published" and done["rev_reg_id"] and seen[-1] == "published"
        assert gate.calls == 1
        assert _state(city) == done
        assert city.public.get_issuer(city.did)["published"][RESIDENT_ID]["rev_reg_id"] == done["rev_reg_id"]
        assert not (tn.home / "issuers" / "id-office" / PUBLISHING_FILE).exists()
        assert city.verifies(city.resident("PUB-1"))  # issuing works afterwards
        again = _post_publish(city)
        assert again.status_code == 202 and again.json() == done and gate.calls == 1


def test_a_failed_publication_is_reported_without_paths_and_retried(tmp_path, gate):
    tn = make_node(tmp_path)
    with LiveServer(tn.node) as server, fast_cred_defs():
        city = Office(tn, server, tmp_path)
        gate.fail = OSError(f"[Errno 28] No space left on device: '{tn.home}/issuers/id-office/tails/x'")
        gate.open.set()
        with pytest.raises(PublicationError) as failed:
            city.office.publish(city.did, RESIDENT_ID)
        state = failed.value.publication
        assert state["state"] == "failed" and state["step"] == "registry"
        assert state["reason"] == "OSError (the node's log says why)"
        assert str(tmp_path) not in httpx.get(f"{city.url}/issuers/{city.did}").text
        assert _state(city) == state  # kept until a later POST
        gate.fail = None
        done = city.office.publish(city.did, RESIDENT_ID)  # the same definition, already anchored, is reused
        assert done["state"] == "published" and gate.calls == 2
        assert city.verifies(city.resident("RETRY-1"))


def test_a_publication_cut_short_by_a_stop_is_resumed_when_the_node_starts(tmp_path, gate):
    tn = make_node(tmp_path)
    marker = tn.home / "issuers" / "id-office" / PUBLISHING_FILE
    with LiveServer(tn.node) as server, fast_cred_defs():
        city = Office(tn, server, tmp_path)
        assert _post_publish(city).status_code == 202
        _until(lambda: _state(city), lambda s: s["step"] == "registry")
        did = city.did
    # The node stopped while the registry was being created; that thread now fails with it.
    gate.fail = RuntimeError("the node stopped")
    gate.open.set()
    tn.node.issuers[did].wait_published()
    assert json.loads(marker.read_text()) == [RESIDENT_ID]
    gate.fail = None
    restarted = Node(tn.node.config)
    with LiveServer(restarted) as server, fast_cred_defs():
        city = Office(tn, server, tmp_path)
        done = _until(lambda: _state(city), lambda s: s["state"] != "preparing")  # no POST: resumed at start
        assert done["state"] == "published" and gate.calls == 2
        assert not marker.exists()
        assert city.verifies(city.resident("RESUMED-1"))
