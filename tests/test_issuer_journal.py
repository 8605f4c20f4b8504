"""A hosted office's offers go to a sealed journal instead of rewriting its whole state each time.

An offer or a redemption appends one small sealed record (at the city's registry size the register
of issued credentials alone is megabytes); publishing, revoking and every MAX_JOURNAL_RECORDS-th
record save the whole state and start the journal again. A restart takes the journal's offers and
redemptions back, ignores a torn last record, and never revives an offer the saved state has
already redeemed.
"""

from __future__ import annotations

import shutil

import pytest

from test_api_helpers import LiveServer, make_node
from test_identity_fixtures import ALICE, fast_cred_defs
from cityledger.node.runner import Node
from cityledger.offchain.identity import RESIDENT_ID
from cityledger.sdk import ApiError, IdentityClient


def _clients(tn, server):
    public = IdentityClient(server.url)
    did = {item["folder"]: item["did"] for item in public.list_issuers()}["id-office"]
    token = (tn.home / "issuers" / "id-office" / "token").read_text().strip()
    return public, IdentityClient(server.url, token=token), did


def _offer(office, did, reference):
    return office.create_offer(did, RESIDENT_ID, dict(ALICE, id_number=reference), reference)


def test_offers_are_journalled_and_survive_a_restart(tmp_path):
    tn = make_node(tmp_path)
    folder = tn.home / "issuers" / "id-office"
    with LiveServer(tn.node) as server, fast_cred_defs():
        public, office, did = _clients(tn, server)
        office.publish(did, RESIDENT_ID)
        saved = (folder / "state.sealed").read_bytes()
        offers = [_offer(office, did, f"J-{i}") for i in range(3)]
        assert (folder / "state.sealed").read_bytes() == saved  # the offers did not rewrite the state
        assert (folder / "state.journal").stat().st_mode & 0o777 == 0o600
        redeemed = _offer(office, did, "J-REDEEMED")
        wallet = public.open_wallet(tmp_path / "w.wallet", "pw", create=True, tails_cache=tmp_path / "tails")
        request = public.request_credential(wallet, redeemed)
        public.submit_credential_request(did, request)  # journalled too
        assert (folder / "state.sealed").read_bytes() == saved
        late = _offer(office, did, "J-LATE")
    with open(folder / "state.journal", "ab") as journal:
        journal.write(b"\x00\x00\x01\x00torn")  # a crash in the middle of an append
    restarted = Node(tn.node.config)
    with LiveServer(restarted) as server:
        public, office, did = _clients(tn, server)
        public.get_issuer(did)  # loads the office's state
        assert not (folder / "state.journal").exists()  # folded into the state when it was loaded
        wallet = public.open_wallet(tmp_path / "w2.wallet", "pw", create=True, tails_cache=tmp_path / "tails")
        for offer in (offers[0], late):  # made before the restart, one journalled after the last save
            public.obtain_credential(wallet, offer)
        with pytest.raises(ApiError) as replayed:
            public.submit_credential_request(did, request)
        assert replayed.value.field == "thread"
        # The redemption came back from the journal: its index is taken and it can be revoked.
        assert office.revoke(did, ["J-REDEEMED"])["revoked"] == 1


def test_a_stale_journal_never_revives_a_redeemed_offer(tmp_path):
    tn = make_node(tmp_path)
    folder = tn.home / "issuers" / "id-office"
    with LiveServer(tn.node) as server, fast_cred_defs():
        public, office, did = _clients(tn, server)
        office.publish(did, RESIDENT_ID)
        offer = _offer(office, did, "STALE-1")
        shutil.copy(folder / "state.journal", tmp_path / "journal")
        wallet = public.open_wallet(tmp_path / "w.wallet", "pw", create=True, tails_cache=tmp_path / "tails")
        request = public.request_credential(wallet, offer)
        public.submit_credential_request(did, request)
        office.revoke(did, ["STALE-1"])  # a full save, which starts the journal again
    # A crash after that save but before the old journal was removed.
    shutil.copy(tmp_path / "journal", folder / "state.journal")
    restarted = Node(tn.node.config)
    with LiveServer(restarted) as server:
        public, office, did = _clients(tn, server)
        with pytest.raises(ApiError) as again:
            public.submit_credential_request(did, request)
        assert again.value.code == "issuer/refused" and again.value.field == "thread"
