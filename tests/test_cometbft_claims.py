"""Claims under the CometBFT engine: the ABCI server checks batches of CheckTx, and the txs of a
block it never checked, in the verifier workers (engines/cometbft/stateless.py).

The first tests drive the ABCI server in-process, with the workers' own code run in a thread of
this process (so ezkl verifications can be counted); the last ones run real CometBFT networks.
"""

from __future__ import annotations

import asyncio
import threading
import time

import msgspec
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from helpers import assert_error_kind, make_chain
from mobility_fixtures import PSEUDONYM, stored_claims
from test_mobility_parallel import batch, count_verifications  # noqa: F401 - batch is a fixture
from test_abci_server import _FakeTransport, _responses
from cityledger.app import abc
from cityledger.engines.cometbft import abci_server
from cityledger.engines.cometbft import stateless as stateless_mod
from cityledger.engines.cometbft.abci_server import AbciServer
from cityledger.engines.cometbft.framing import compute_frame
from cityledger.engines.cometbft.proto import abci
from cityledger.engines.cometbft.stateless import StatelessChecks, compute_chunks, is_heavy
from cityledger.engines.solo.verifier import check_tx_bytes
from cityledger.modules import mobility
from cityledger.modules.bank.keeper import KEEPER as BANK
from cityledger.modules.identity.keeper import KEEPER as IDENTITY
from cityledger.modules.mobility import ProofVerifier, get_programme
from cityledger.modules.mobility import errors as E
from cityledger.modules.mobility.stateless import _worker_verifier
from cityledger.node.modules import default_modules, proof_verifier

HANG_GUARD_S = 60  # waits for the workers' thread, generous: only a hang fails it


class ThreadWorkers:
    """The verifier processes' work (check_tx_bytes), done in the caller's thread; counts txs."""

    def __init__(self, app) -> None:
        self.codec, self.checks, self.txs = app.codec, app.stateless_checks(), 0

    def start(self) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def workers(self) -> int:
        return 2

    def verify(self, chunks):
        for chunk in chunks:
            self.txs += len(chunk)
            yield bytes(check_tx_bytes(self.codec, self.checks, raw) for raw in chunk)


def started_checks(app) -> StatelessChecks:
    checks = StatelessChecks(app, workers=2)
    checks.verifier = ThreadWorkers(app)
    checks.start()
    return checks


def _request(**kind) -> bytes:
    return compute_frame(abci.Request(**kind).SerializeToString())


def _block_request(kind, height: int, txs, time_ns: int):
    stamp = Timestamp(seconds=time_ns // 10**9, nanos=time_ns % 10**9)
    return kind(height=height, txs=list(txs), time=stamp, hash=height.to_bytes(32, "big"))


async def _answers(transport, count: int) -> list:
    """The responses written to transport, once there are count of them."""
    deadline = time.monotonic() + HANG_GUARD_S
    while len(_responses(transport.writes)) < count:
        assert time.monotonic() < deadline, f"hang guard: {count} answers not written after {HANG_GUARD_S}s"
        await asyncio.sleep(0.01)
    return _responses(transport.writes)


def serve_check_txs(app, checks, txs, tail: bytes, before_answers=None):
    """CheckTx of txs, then a `tail` frame, pipelined on a mempool connection of an in-process
    server; before_answers(connection, transport) runs first if given. (The responses, the handler.)"""
    async def scenario():
        server = AbciServer(app, "tcp://127.0.0.1:0", stateless=checks)
        await server.start()
        try:
            mempool, transport = abci_server._Connection(server), _FakeTransport()
            mempool.connection_made(transport)
            frames = [_request(check_tx=abci.RequestCheckTx(tx=tx)) for tx in txs]
            mempool.data_received(b"".join(frames) + tail)
            if before_answers is not None:
                await before_answers(mempool, transport)
            return await _answers(transport, len(txs) + 1), server.handler
        finally:
            await server.close()

    return asyncio.run(scenario())


def finalize(handler, app, txs, time_ns: int):
    """FinalizeBlock and Commit of the next height through the ABCI handler; the response."""
    height = app.last_height() + 1
    response = abci.ResponseFinalizeBlock.FromString(handler.process_finalize_block(
        _block_request(abci.RequestFinalizeBlock, height, txs, time_ns)))
    handler.process_commit(abci.RequestCommit())
    return response


def test_heavy_batches_and_chunks():
    assert not is_heavy([b"x" * 200] * (stateless_mod.MIN_WORKER_TXS - 1))  # transfers: a full slice only
    assert is_heavy([b"x" * 200] * stateless_mod.MIN_WORKER_TXS)
    assert is_heavy([b"x" * 200, b"x" * stateless_mod.MIN_WORKER_TX_BYTES])  # one claim is enough
    chunks = compute_chunks([bytes([i]) for i in range(9)], workers=2)
    assert [b for chunk in chunks for b in chunk] == [bytes([i]) for i in range(9)] and len(chunks) == 3


def test_check_tx_batch_verified_in_workers_answered_in_order(batch, monkeypatch):
    """Pipelined CheckTx of three claims: one ezkl verification each in the workers, the forged one
    judged again by the handler, answers in request order; FinalizeBlock verifies nothing again."""
    rewards, txs = batch
    app = rewards.ledger.app
    calls = count_verifications(monkeypatch, node=proof_verifier(), worker=_worker_verifier())
    checks = started_checks(app)

    try:
        responses, handler = serve_check_txs(app, checks, txs, _request(flush=abci.RequestFlush()))
        assert [r.WhichOneof("value") for r in responses] == ["check_tx"] * 3 + ["flush"]
        assert [r.check_tx.code == 0 for r in responses[:3]] == [True, False, True]
        assert responses[1].check_tx.codespace == "mobility" and "proof" in responses[1].check_tx.log
        assert checks.verifier.txs == 3 and calls == {"node": 1, "worker": 3}
        good = [txs[0], txs[2]]
        result = finalize(handler, app, good, rewards.ledger.time_ns + 10**9)
        assert [r.code for r in result.tx_results] == [0, 0]
        assert calls == {"node": 1, "worker": 3} and checks.verifier.txs == 3  # nothing verified again
        assert get_programme(app.store, 1).claims == 2
    finally:
        checks.stop()


def test_light_check_tx_waits_behind_a_batch_in_the_workers(batch, monkeypatch):
    """A light batch taken while a heavy one is in the workers is answered after it, in order."""
    rewards, txs = batch
    app = rewards.ledger.app
    checks = started_checks(app)
    release = threading.Event()
    real_verify = checks.verifier.verify

    def held(chunks):
        release.wait(HANG_GUARD_S)
        yield from real_verify(chunks)

    monkeypatch.setattr(checks.verifier, "verify", held)
    monkeypatch.setattr(abci_server, "MAX_BATCH_REQUESTS", 3)

    async def held_back(mempool, transport):
        for _ in range(5):
            await asyncio.sleep(0)
        assert transport.writes == [] and len(mempool.jobs) == 2  # the echo waits behind the claims
        release.set()

    try:
        responses, _ = serve_check_txs(app, checks, txs, _request(echo=abci.RequestEcho(message="after")), held_back)
    finally:
        release.set()
        checks.stop()
    assert [r.WhichOneof("value") for r in responses] == ["check_tx"] * 3 + ["echo"]
    assert [r.check_tx.code == 0 for r in responses[:3]] == [True, False, True]


def test_dead_workers_leave_the_checks_to_the_app(batch, monkeypatch):
    """Workers that fail answer nothing: the handler verifies every claim itself, same results."""
    rewards, txs = batch
    app = rewards.ledger.app
    calls = count_verifications(monkeypatch, node=proof_verifier())
    checks = started_checks(app)

    def dead(chunks):
        raise RuntimeError("verifier worker 1 died (exit code -9)")
        yield

    monkeypatch.setattr(checks.verifier, "verify", dead)
    handler = abci_server.RequestHandler(app, stateless=checks)
    job = checks.plan([abci.Request(check_tx=abci.RequestCheckTx(tx=tx)).SerializeToString() for tx in txs])
    assert len(job.raws) == 3
    checks.submit_check(job, None)
    assert job.done.wait(HANG_GUARD_S) and job.flags is None
    try:
        payload, status = handler.handle_batch(job.frames, flags=job.flags)
    finally:
        checks.stop()
    codes = [r.check_tx.code for r in _responses([payload])]
    assert [code == 0 for code in codes] == [True, False, True] and status == abci_server.BATCH_OK
    assert calls == {"node": 3}


def test_unseen_block_verified_in_workers_and_validators_agree(batch, monkeypatch, tmp_path):
    """A validator that never saw the claims (another's proposal): ProcessProposal sends them to the
    workers at once, FinalizeBlock verifies nothing again, and its app hashes equal the proposer's."""
    rewards, txs = batch
    proposer = rewards.ledger  # its block holds the forged claim too (a proposer need not check proofs)
    proposer.time_ns += 10**9
    result = proposer.app.finalize_block(abc.BlockRequest(height=proposer.height() + 1, time_ns=proposer.time_ns,
                                                          txs=tuple(txs)))
    proposer.app.commit()
    assert [r.ok for r in result.tx_results] == [True, False, True]
    other = ProofVerifier()
    calls = count_verifications(monkeypatch, other=other, worker=_worker_verifier())
    modules = [m for m in default_modules() if m.name != "mobility"]
    modules.append(mobility.new_module(bank=BANK, identity=IDENTITY, verifier=other))
    replica = make_chain(tmp_path / "b", modules=modules)
    checks = started_checks(replica.app)
    handler = abci_server.RequestHandler(replica.app, stateless=checks)
    store = proposer.store
    try:
        for height in range(1, store.last_height() + 1):
            block = store.get_block(height)
            proposal = _block_request(abci.RequestProcessProposal, height, block.txs, block.time_ns)
            status = abci.ResponseProcessProposal.FromString(handler.process_process_proposal(proposal)).status
            assert status == abci.ResponseProcessProposal.ACCEPT
            response = finalize(handler, replica.app, block.txs, block.time_ns)
            assert response.app_hash == store.height_info(height).app_hash, f"height {height}"
    finally:
        checks.stop()
    assert calls == {"other": 1, "worker": 3}  # the forged proof alone is judged again by the handler
    assert get_programme(replica.store, 1).claims == 2
    assert checks.block_verified_txs == 3  # the claims: the set-up blocks hold no large tx
    last = store.get_block(store.last_height())
    assert_error_kind(last.results[1], E.ERR_PROOF_REJECTED)


# -- a real CometBFT network ---------------------------------------------------------------------

def _programme(net, name: str) -> dict:
    import base64
    import json

    data = json.dumps({"id": "1"}).encode().hex()
    with net.rpc(name) as client:
        response = client.call("abci_query", path="/mobility/programme", data=data)["response"]
    return json.loads(base64.b64decode(response["value"]))


def _reward_network(root, office):
    """A 2-validator network (chain CHAIN_ID, so the stored claims fit) whose genesis accredits
    `office` for vehicle registrations; neither mempool relays txs to the other."""
    from test_cometbft_network import FAST

    from cityledger.engines.cometbft.config import set_config_values
    from cityledger.engines.cometbft.testnet import Testnet, compute_default_app_state
    from cityledger.tools.bench_rewards import _office_entry
    from helpers import CHAIN_ID

    state = compute_default_app_state(root / "keys")
    state["identity"] = {"dids": [_office_entry(office)]}
    net = Testnet.create(root / "net", validators=2, chain_id=CHAIN_ID, app_state=state, timeouts=FAST,
                         snapshot_interval=0)
    for node in net.nodes:  # validator1 sees validator0's txs only in its proposals
        set_config_values(net.cometbft_home(node.name) / "config" / "config.toml", {"mempool.broadcast": False})
    return net


def _reward_txs(chain_id: str, keys, office) -> list[list[bytes]]:
    """Three rounds of txs: the programme; two enrollments of PSEUDONYM; a good, a forged and a fair claim."""
    from cityledger.core.tx import build_tx
    from cityledger.modules.identity import compute_did
    from cityledger.modules.mobility import CreateProgramme
    from cityledger.modules.mobility.messages import MAX_PERIOD_BLOCKS
    from cityledger.offchain.mobility.rewards import issue_enrollment
    from cityledger.tools.bench_rewards import OFFICE_SECRET

    sponsor, driver, stranger = keys
    programme = CreateProgramme("driving-score-v1", 10_000, 60, 100, 10, 500, 2_000, MAX_PERIOD_BLOCKS, 1_000_000,
                                compute_did(office.signer(), b""))
    enroll = [build_tx(chain_id, [key], 0, [issue_enrollment(office, OFFICE_SECRET, chain_id, 1, 0, vehicle,
                                                             PSEUDONYM.public_key, key.address())])
              for key, vehicle in ((driver, "did:city:vehicle-a"), (stranger, "did:city:vehicle-b"))]
    claims = stored_claims()
    forged = msgspec.structs.replace(claims["fair"], score_fixed=claims["good"].score_fixed)
    return [[build_tx(chain_id, [sponsor], 0, [programme])], enroll,
            [build_tx(chain_id, [driver], 1, [claims["good"]]), build_tx(chain_id, [stranger], 1, [forged]),
             build_tx(chain_id, [driver], 2, [claims["fair"]])]]


@pytest.mark.slow
@pytest.mark.cometbft
def test_claims_on_two_validators_one_never_sees_the_txs(tmp_path):
    """Claims through validator0's API: the forged one refused by its CheckTx (workers, then the
    handler), the others committed; validator1, whose mempool never held them, verifies them in its
    workers when validator0's proposal arrives, pays the same and reaches the same app hashes; both
    answer the same over the typed reward routes (api/routes/mobility.py)."""
    import httpx
    from test_cometbft_network import _app_hashes, _committed, _member_key, _wait_until

    from cityledger.core.hashing import compute_tx_id
    from cityledger.core.keys import PrivateKey

    office = PrivateKey.generate()
    net = _reward_network(tmp_path, office)
    keys = [_member_key(tmp_path / "keys", i) for i in range(3)]
    rounds = _reward_txs(net.chain_id, keys, office)
    net.start()
    try:
        with httpx.Client(base_url=net.node("validator0").api_url, timeout=120) as api:
            for txs in rounds:
                answer = api.post("/txs/batch", json={"txs": [tx.hex() for tx in txs]})
                assert answer.status_code == 200, answer.text
                results = answer.json()["results"]
                for tx, result in zip(txs, results):
                    if result["code"] == 0:
                        waited = api.get(f"/txs/{compute_tx_id(tx).hex()}/wait", params={"timeout_s": 120})
                        assert waited.json().get("status") == "committed", waited.text
        assert [r["code"] == 0 for r in results] == [True, False, True], results
        assert results[1]["codespace"] == "mobility" and "proof" in results[1]["log"], results[1]
        paid = [compute_tx_id(rounds[2][i]).hex().upper() for i in (0, 2)]
        for name in ("validator0", "validator1"):
            _wait_until(lambda: all(_committed(net, name, h) for h in paid), f"the claims on {name}")
            assert _programme(net, name)["claims"] == 2
        top = min(net.heights().values())
        assert _app_hashes(net, "validator0", top) == _app_hashes(net, "validator1", top)
        _same_reads_over_rest(net, keys[1], top)
    finally:
        net.stop()
    unseen = "had not checked go to the verifier workers"
    assert unseen in net.log_tail("validator1", "app", 200_000)  # validator0's proposals
    assert unseen not in net.log_tail("validator0", "app", 200_000)  # its own CheckTx saw them all


def _same_reads_over_rest(net, driver, height: int) -> None:
    """Each validator's typed reward routes answer the same programme, claims and enrollment at `height`,
    and its claim check refuses the paid claim again."""
    import httpx

    claims = stored_claims()
    paths = ["/mobility/programmes/1", f"/mobility/programmes/1/enrollments/city{driver.address().hex()}",
             *(f"/mobility/programmes/1/claims/{claims[name].commitment.hex()}" for name in ("good", "fair"))]
    from cityledger.sdk.mobility import claim_check_body

    check = msgspec.json.encode(claim_check_body(claims["good"], driver.address()))
    answers = []
    for name in ("validator0", "validator1"):
        with httpx.Client(base_url=net.node(name).api_url, timeout=60) as api:
            answers.append([api.get(path, params={"height": height}).json() for path in paths])
            refused = api.post("/mobility/claims/check", content=check, headers={"content-type": "application/json"})
            assert refused.status_code == 409 and refused.json()["error"]["field"] == "commitment", refused.text
    assert answers[0] == answers[1], answers
    programme, enrollment, good, fair = answers[0]
    assert (programme["claims"], enrollment["paid"], enrollment["trips"]) == (2, 720, 2), answers[0]
    assert (good["score"], good["reward"], fair["distance_km"], fair["reward"]) == (100, 220, 40, 500), answers[0]
