"""Random transaction sequences over every module: each module's invariants hold after every block,
two apps fed the same blocks agree on every app hash, and what only grows never shrinks.

The start is the devices vectors' pre-state (a consortium, funded accounts, an accredited maker and
transport office with its revocation registry, a bound device offered for transfer, a decommissioned
one), built once and copied for each example. Hypothesis then draws transfers and multi-sends,
proposals and votes for every governance action, DID creation, rotation and deactivation, status
list updates, device registration, binding, offers, acceptance and decommissioning, consent's
data sets, grants, revocations and anchors, gateway-wide roots (the template adds an accredited gateway and vault service
and one data set), and payments (channels opened, topped up, redeemed, closed and finalized, escrows,
device policies and freezes, payments from a device account), and mobility (programmes, top-ups,
withdrawals, enrollment tickets, proven claims), from pools of keys and identifiers small enough
that the draws collide with the state already there.
"""

from __future__ import annotations

from functools import partial

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cityledger.core.encoding import encode
from cityledger.core.keys import PrivateKey
from cityledger.modules.bank import MultiSend, Output, Transfer
from cityledger.modules.consent import (
    RegisterVaultKey,
    GATEWAY_TYPE,
    VAULT_SERVICE_TYPE,
    ZERO_HEAD,
    AnchorAccessLog,
    AnchorGatewayRoot,
    AnchorRecordsRoot,
    GrantConsent,
    RegisterDataSet,
    RevokeConsent,
    compute_data_set_id,
    get_consent,
)
from cityledger.modules.devices import KINDS, AcceptTransfer, BindDevice, Decommission, OfferTransfer, get_device
from cityledger.modules.devices import compute_device_did
from cityledger.modules.governance.keys import NEXT_PROPOSAL_ID_KEY
from cityledger.modules.governance import MembershipChange, ParamChange, SubmitProposal, ValidatorChange, Vote
from cityledger.modules.identity import (
    PURPOSE_ASSERTION,
    PURPOSE_AUTHENTICATION,
    AccreditIssuer,
    CreateDid,
    DeactivateDid,
    UpdateDid,
    UpdateStatusList,
    VerificationKey,
    WithdrawAccreditation,
    compute_did,
    get_status_list,
)
from cityledger.modules.payments import (
    CloseChannel,
    DeclareCounterparty,
    FinalizeChannel,
    FreezeDevice,
    LockEscrow,
    OpenChannel,
    RedeemVoucher,
    RefundEscrow,
    ReleaseEscrow,
    SetPolicy,
    StartClose,
    TopUpChannel,
    get_channel,
    sign_voucher,
)
from cityledger.modules.mobility import CreateProgramme, FundProgramme, WithdrawProgramme, sign_commitment
from cityledger.modules.mobility.messages import MAX_PERIOD_BLOCKS
from cityledger.offchain.identity.devices import build_registration
from cityledger.offchain.mobility.rewards import issue_enrollment
from mobility_fixtures import OTHER_PSEUDONYM, PSEUDONYM, stored_claims

from module_vectors import AppReplay, Step, vectors_of
from module_vectors import build_block as shared_build_block
from module_vectors import open_copy as shared_open_copy

VECTORS = vectors_of("devices")
KEYS = dict(VECTORS.keys) | {f"fresh{i}": PrivateKey(1, bytes([0xA0 + i]) * 32) for i in range(2)}
NAMES = sorted(KEYS)
MEMBERS = ["m0", "m1", "m2", "a0"]  # one non-member among them
DEVICE_KEYS = ["device1", "device2", "device3", "fresh0"]
DEVICE_DIDS = [compute_device_did(KEYS[name].public_key) for name in DEVICE_KEYS]
ORG_DIDS = ([compute_did(KEYS[name].signer(), salt) for name in ("fresh0", "fresh1", "a0") for salt in (b"", b"x")]
            + [compute_did(KEYS[name].signer(), b"") for name in ("maker", "rogue", "transport")])
ADDRESSES = [KEYS[name].address() for name in ("a0", "a1", "owner1", "owner2", "thief", "fresh1")]
STATUS = next(m for step in VECTORS.history for m in step.messages if isinstance(m, UpdateStatusList))
PERIOD = "governance.voting_period_blocks"

keys = st.sampled_from(NAMES)
funded = st.sampled_from(["m0", "m1", "a0", "a1", "a2", "owner1"])
members = st.sampled_from(MEMBERS)
controllers = st.sampled_from(["fresh0", "fresh1", "a0"])
salts = st.sampled_from([b"", b"x"])
device_actors = st.sampled_from(["owner1", "owner2", "thief", "maker"])
amounts = st.sampled_from([-1, 0, 1, 250, 10**6, 2**62])
addresses = st.sampled_from(ADDRESSES)
any_did = st.sampled_from(ORG_DIDS + DEVICE_DIDS + ["did:web:example.com"])
device_dids = st.sampled_from(DEVICE_DIDS)
credential_types = st.sampled_from(["device-manufacturer", "vehicle-registration", "Not A Type", GATEWAY_TYPE,
                                    VAULT_SERVICE_TYPE])
SCHEMA = "vehicle-telemetry-1"
COMMITMENTS = [b"\x11" * 32, b"\x12" * 32]
DATA_SETS = [compute_data_set_id(KEYS[owner].address(), DEVICE_DIDS[0], SCHEMA, commitment)
             for owner in ("owner1", "owner2") for commitment in COMMITMENTS] + ["ds-" + "0" * 32]
HEADS = [ZERO_HEAD, b"\x21" * 32, b"\x22" * 32, b"\x23" * 31]
data_sets = st.sampled_from(DATA_SETS[:1] * 3 + DATA_SETS)  # mostly the template's data set
subjects = st.sampled_from(DATA_SETS[:2] + ["city" + KEYS["owner1"].address().hex(), "nobody"])
heads = st.sampled_from(HEADS)
services = st.sampled_from([compute_did(KEYS[n].signer(), b"") for n in ("transport", "maker")])  # vault, gateway
vault_subjects = st.sampled_from(["city" + KEYS["owner1"].address().hex(), "city" + KEYS["thief"].address().hex(),
                                  compute_did(KEYS["maker"].signer(), b""), ""])
vault_keys = st.sampled_from([b"\x09" * 32, b"\x0a" * 32, b"\x01" + bytes(31), b"\x09" * 31])
data_set_actors = st.sampled_from(["owner1", "owner1", "owner1", "thief"])  # mostly the data set's owner
consumers = st.sampled_from(ORG_DIDS[-3:] + DEVICE_DIDS[:1] + ["did:web:example.com"])


def _methods(name: str) -> list[VerificationKey]:
    return [VerificationKey("key-1", KEYS[name].public_key, [PURPOSE_ASSERTION, PURPOSE_AUTHENTICATION])]


def _did(name: str, salt: bytes) -> str:
    return compute_did(KEYS[name].signer(), salt)


def _registration(maker: str, device: str, kind: str) -> tuple[str, list]:
    return maker, [build_registration(VECTORS.chain_id, kind, "Model-1", KEYS[device], _did(maker, b""), KEYS[maker])]


actions = st.one_of(
    st.builds(ParamChange, st.sampled_from([PERIOD, "no.such_param"]), st.sampled_from([0, 1, 3, 100])),
    st.builds(ValidatorChange, st.sampled_from([bytes(32), bytes(range(32)), b"\x01" * 31]),
              st.integers(0, 3)),
    st.builds(MembershipChange, st.lists(st.sampled_from([KEYS[n].address() for n in MEMBERS]), max_size=4),
              st.integers(0, 4)),
    st.builds(AccreditIssuer, any_did, credential_types),
    st.builds(WithdrawAccreditation, any_did, credential_types),
)

# Payments: payers include device accounts (funded by a draw), ids and heights collide with the state.
START = len(VECTORS.history)  # about the template's height
payers = st.sampled_from(["a0", "device1"])  # device1 is owner1's
payees = st.sampled_from(["a2", "owner2"])
payee_addresses = payees.map(lambda name: KEYS[name].address())
ids = st.sampled_from([1, 1, 2])
heights = st.sampled_from([START + 30, START + 200, START + 12, 0])  # valid values first: they shrink there
policy_actors = st.sampled_from(["owner1", "owner1", "thief"])  # owner1 owns device1
policy_devices = st.sampled_from([DEVICE_DIDS[0], DEVICE_DIDS[0], DEVICE_DIDS[2]])
caps = st.sampled_from([300, 10**6, 0])
payments = st.sampled_from([250, 1, 10**4, -1])


def _voucher(payer: str, payee: str, channel: int, amount: int, nonce: int, kind=RedeemVoucher) -> tuple[str, list]:
    return payee, [kind(channel, amount, nonce, sign_voucher(KEYS[payer], VECTORS.chain_id, channel, amount, nonce))]


opens = st.tuples(payers, st.just(KEYS["a2"].address()), payments, st.sampled_from([2, 3, 1])).map(
    lambda o: (o[0], [OpenChannel(o[1], o[2], o[3], KEYS[o[0]].public_key)]))
payment_operations = [
    opens,
    opens,
    st.tuples(st.just("a0"), st.just([Transfer(KEYS["device1"].address(), 10**6)])),
    st.tuples(payers, st.builds(TopUpChannel, ids, payments).map(lambda m: [m])),
    st.tuples(payers, st.just("a2"), ids, st.sampled_from([200, 1, 0, 10**6]), st.integers(1, 4)).map(
        lambda v: _voucher(*v)),
    st.tuples(payers, payees, ids, st.sampled_from([200, 1, 0]), st.integers(0, 4)).map(
        lambda v: _voucher(*v, kind=CloseChannel)),
    st.tuples(payees, ids.map(lambda c: [CloseChannel(c, 0, 0, b"")])),
    st.tuples(payers, ids.map(lambda c: [StartClose(c)])),
    st.tuples(st.one_of(payers, payees), ids.map(lambda c: [FinalizeChannel(c)])),
    st.tuples(payers, st.builds(LockEscrow, payee_addresses, payments, heights).map(lambda m: [m])),
    st.tuples(payers, ids.map(lambda e: [ReleaseEscrow(e)])),
    st.tuples(payers, ids.map(lambda e: [RefundEscrow(e)])),
    st.tuples(policy_actors, st.builds(SetPolicy, policy_devices, caps, caps, st.sampled_from([[], ["charger"]]),
                                       st.lists(payee_addresses, max_size=2).map(lambda a: sorted(set(a))), heights)
              .map(lambda m: [m])),
    st.tuples(policy_actors, policy_devices.map(lambda d: [FreezeDevice(d)])),
    st.tuples(policy_actors, policy_devices.map(lambda d: [DeclareCounterparty("charger", d)])),
]

# Mobility: programmes by a0 (funded) or a stranger, tickets from the accredited transport office
# for a1 and a2, claims of the stored proven trips re-signed for this chain (proofs are chain-free).
CLAIMS = stored_claims()
enrollees = st.sampled_from(["a1", "a2"])


def _programme(sponsor: str, budget: int, expiry: int) -> tuple[str, list]:
    return sponsor, [CreateProgramme("driving-score-v1", budget, 60, 100, 10, 400, 700, MAX_PERIOD_BLOCKS, expiry,
                                     _did("transport", b""))]


def _ticket(account: str, vehicle: str, programme_id: int, pseudonym) -> tuple[str, list]:
    return account, [issue_enrollment(KEYS["transport"], b"o" * 32, VECTORS.chain_id, programme_id, 0, vehicle,
                                      pseudonym.public_key, KEYS[account].address())]


def _claim(account: str, name: str, programme_id: int) -> tuple[str, list]:
    claim = CLAIMS[name]
    signature = sign_commitment(PSEUDONYM, VECTORS.chain_id, programme_id, claim.trip_id, claim.commitment)
    return account, [msgspec_replace(claim, programme_id=programme_id, commitment_signature=signature)]


mobility_operations = [
    st.tuples(st.sampled_from(["a0", "a0", "thief"]), st.sampled_from([1_000, 300, 0, 2**62]), heights).map(
        lambda p: _programme(*p)),
    st.tuples(st.sampled_from(["a0", "a1"]), st.builds(FundProgramme, ids, payments).map(lambda m: [m])),
    st.tuples(st.sampled_from(["a0", "a1"]), ids.map(lambda i: [WithdrawProgramme(i)])),
    st.tuples(enrollees, st.sampled_from(["car-1", "car-2"]), ids, st.sampled_from([PSEUDONYM, OTHER_PSEUDONYM]))
    .map(lambda t: _ticket(*t)),
    st.tuples(enrollees, st.sampled_from(["good", "fair", "poor"]), ids).map(lambda c: _claim(*c)),
]


# Each operation is (signing key name, messages). Signers are mostly those entitled to act, so most
# transactions get far enough to change state; the pools are small, so draws collide with it.
operations = st.one_of(
    st.tuples(funded, st.builds(Transfer, addresses, amounts).map(lambda m: [m])),
    st.tuples(keys, st.lists(st.builds(Output, addresses, amounts), max_size=3).map(lambda o: [MultiSend(o)])),
    st.tuples(members, actions.map(lambda a: [SubmitProposal(encode(a))])),
    st.tuples(members, st.builds(Vote, st.integers(1, 4), st.booleans()).map(lambda m: [m])),
    st.tuples(controllers, salts).map(lambda c: (c[0], [CreateDid(c[1], KEYS[c[0]].signer(), _methods(c[0]), [])])),
    st.tuples(keys, controllers, salts).map(lambda c: (c[0], [CreateDid(c[2], KEYS[c[1]].signer(), [], [])])),
    st.tuples(controllers, salts, st.integers(1, 3), keys).map(lambda u: (u[0], [UpdateDid(
        _did(u[0], u[1]), u[2], KEYS[u[3]].signer(), _methods(u[3]), [])])),
    st.tuples(controllers, any_did.map(lambda d: [DeactivateDid(d)])),
    st.tuples(controllers, salts).map(lambda c: (c[0], [DeactivateDid(_did(c[0], c[1]))])),
    st.tuples(st.just("transport"), st.binary(min_size=len(STATUS.revoked), max_size=len(STATUS.revoked)).map(
        lambda bits: [UpdateStatusList(STATUS.rev_reg_def_id, bits, STATUS.accumulator)])),
    st.tuples(st.sampled_from(["maker", "rogue"]), st.sampled_from(DEVICE_KEYS),
              st.sampled_from(list(KINDS) + ["toaster"])).map(lambda r: _registration(*r)),
    st.tuples(device_actors, st.builds(OfferTransfer, device_dids, st.one_of(addresses, st.just(b"")))
              .map(lambda m: [m])),
    st.tuples(device_actors, device_dids.map(lambda d: [Decommission(d)])),
    st.tuples(device_actors, device_dids.map(lambda d: [BindDevice(d, b"{}")])),
    st.tuples(device_actors, device_dids.map(lambda d: [AcceptTransfer(d, b"{}")])),
    st.tuples(device_actors, st.builds(RegisterDataSet, st.sampled_from([SCHEMA, "Bad Schema"]),
                                       st.sampled_from(COMMITMENTS + [b"\x13" * 31]), device_dids, services,
                                       st.sampled_from(["", ORG_DIDS[0]])).map(lambda m: [m])),
    st.tuples(data_set_actors, st.builds(GrantConsent, data_sets, consumers,
                                         st.sampled_from(["research", "ad-training", "marketing"]),
                                         st.sampled_from([1, 3, 0]), st.sampled_from([5, 40, 1]),
                                         st.sampled_from([60, 500, 1, 10**8])).map(lambda m: [m])),
    st.tuples(data_set_actors, st.integers(0, 4).map(lambda i: [RevokeConsent(i)])),
    st.tuples(st.sampled_from(["transport", "transport", "maker"]),
              st.builds(AnchorAccessLog, services, subjects, heads, st.integers(0, 4), heads).map(lambda m: [m])),
    st.tuples(st.sampled_from(["owner1", "maker", "thief"]),
              st.builds(AnchorRecordsRoot, data_sets, st.integers(0, 3), st.just(b"\x31" * 32),
                        st.sampled_from([0, 1])).map(lambda m: [m])),
    st.tuples(st.sampled_from(["maker", "maker", "transport", "thief"]),
              st.builds(AnchorGatewayRoot, services, st.integers(0, 3), st.sampled_from([b"\x32" * 32, b"\x32"]),
                        st.sampled_from([0, 1, 7])).map(lambda m: [m])),
    st.tuples(st.sampled_from(["owner1", "maker", "thief"]),
              st.builds(RegisterVaultKey, vault_subjects, vault_keys).map(lambda m: [m])),
    *payment_operations,
    *mobility_operations,
)


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """The devices vectors' pre-state, built once on a store that each example copies."""
    path = tmp_path_factory.mktemp("template") / "ledger.sqlite"
    replay = AppReplay(VECTORS.chain_id, VECTORS.genesis, path)
    for step in VECTORS.history:
        assert replay.deliver(step).ok
    for did, credential_type in ((_did("maker", b""), GATEWAY_TYPE), (_did("transport", b""), VAULT_SERVICE_TYPE)):
        raw = replay.store.get(NEXT_PROPOSAL_ID_KEY)
        proposal_id = 1 if raw is None else int.from_bytes(raw, "big")
        action = SubmitProposal(encode(AccreditIssuer(did, credential_type)))
        assert replay.deliver(Step([KEYS["m0"]], KEYS["m0"].signer(), [action])).ok
        assert replay.deliver(Step([KEYS["m1"]], KEYS["m1"].signer(), [Vote(proposal_id, True)])).ok
    data_set = RegisterDataSet(SCHEMA, COMMITMENTS[0], DEVICE_DIDS[0], _did("maker", b""), "")
    assert replay.deliver(Step([KEYS["owner1"]], KEYS["owner1"].signer(), [data_set])).ok
    replay.store.close()
    return path


def open_copy(template: Path, folder: Path) -> AppReplay:
    """An app on a copy of the template store, continuing at its height."""
    return shared_open_copy(template, folder, VECTORS.chain_id)


def build_block(replay: AppReplay, ops: list) -> list[bytes]:
    """Signed txs for a block from this file's keys."""
    return shared_build_block(replay, ops, KEYS, VECTORS.chain_id)


def growing(replay: AppReplay) -> dict:
    """What may only grow: device epochs, decommissions, the registry's revocations, consent's keys
    (the module never deletes), revocations of consents, and each channel's newest nonce, redeemed
    amount and settlement, and mobility's paid claims."""
    devices = {did: get_device(replay.store, did) for did in DEVICE_DIDS}
    status = get_status_list(replay.store, STATUS.rev_reg_def_id)
    channels = {n: get_channel(replay.store, n) for n in range(1, 5)}
    return {"epochs": {did: (r.epoch, r.status == "decommissioned") for did, r in devices.items() if r},
            "revoked": int.from_bytes(status.revoked, "little"),
            "consent_keys": sum(1 for _ in replay.store.iter_prefix(b"\x08")),
            "consents_revoked": _revoked_consents(replay),
            "mobility_claims": sum(1 for _ in replay.store.iter_prefix(b"\x06\x04")),  # paid claims stay
            "channels": {n: (c.nonce, c.redeemed, c.status == "settled") for n, c in channels.items() if c}}


def _revoked_consents(replay: AppReplay) -> set[int]:
    """Ids of the revoked consents among those the draws can name."""
    consents = (get_consent(replay.store, consent_id) for consent_id in range(1, 5))
    return {consent.id for consent in consents if consent is not None and consent.revoked_height}


def assert_grew(before: dict, after: dict) -> None:
    for did, (epoch, retired) in before["epochs"].items():
        epoch_now, retired_now = after["epochs"][did]
        assert epoch_now >= epoch and retired_now >= retired, did
    assert before["revoked"] & ~after["revoked"] == 0  # a revocation is never undone
    assert before["consent_keys"] <= after["consent_keys"]
    assert before["consents_revoked"] <= after["consents_revoked"]
    assert before["mobility_claims"] <= after["mobility_claims"]
    for channel, (nonce, redeemed, settled) in before["channels"].items():
        nonce_now, redeemed_now, settled_now = after["channels"][channel]
        assert nonce_now >= nonce and redeemed_now >= redeemed and settled_now >= settled, channel


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(ops=st.lists(operations, min_size=1, max_size=30), block_size=st.integers(1, 6))
def test_random_transactions_keep_every_invariant(template, tmp_path_factory, ops, block_size):
    folder = tmp_path_factory.mktemp("random")
    one, two = open_copy(template, folder / "one"), open_copy(template, folder / "two")
    before = growing(one)
    for start in range(0, len(ops), block_size):
        txs = build_block(one, ops[start:start + block_size])
        assert one.block(*txs).app_hash == two.block(*txs).app_hash
        one.app.check_invariants()
        after = growing(one)
        assert_grew(before, after)
        before = after
    assert one.store.recompute_app_hash() == one.store.height_info(one.height).app_hash
    one.store.close()
    two.store.close()


# -- each new invariant catches the corruption it names ------------------------------------------

def corrupted(template: Path, tmp_path: Path, writes: dict[bytes, bytes]):
    """The template's state with raw writes on top, as an invariant would read it."""
    from cityledger.core.state import Overlay

    replay = open_copy(template, tmp_path / "corrupt")
    overlay = Overlay(replay.store)
    for key, value in writes.items():
        overlay.set(key, value)
    return overlay


def test_template_state_holds_every_invariant(template, tmp_path):
    from cityledger.modules.devices.invariants import check_devices
    from cityledger.modules.governance.invariants import check_consortium
    from cityledger.modules.identity.invariants import check_dids
    from cityledger.modules.identity.keeper import KEEPER

    state = corrupted(template, tmp_path, {})
    for check in (partial(check_devices, KEEPER), check_consortium, check_dids):
        check(state)


def test_invalid_accreditation_of_a_missing_did_breaks_identity(template, tmp_path):
    from cityledger.core.errors import InvariantBroken
    from cityledger.modules.identity.invariants import check_dids
    from cityledger.modules.identity.keys import accreditation_key
    from cityledger.modules.identity.messages import Accreditation

    missing = _did("fresh1", b"x")
    state = corrupted(template, tmp_path, {accreditation_key(missing, "resident-id"):
                                           encode(Accreditation(missing, "resident-id", 1))})
    with pytest.raises(InvariantBroken, match="not an organisation DID"):
        check_dids(state)


def test_invalid_status_list_undoing_a_revocation_breaks_identity(template, tmp_path):
    from cityledger.core.errors import InvariantBroken
    from cityledger.modules.identity.invariants import check_dids
    from cityledger.modules.identity.keys import status_list_key
    from cityledger.modules.identity.messages import StatusListRecord

    older = StatusListRecord(STATUS.rev_reg_def_id, b"\x01" + STATUS.revoked[1:], STATUS.accumulator, 0)
    state = corrupted(template, tmp_path, {status_list_key(STATUS.rev_reg_def_id, 0): encode(older)})
    with pytest.raises(InvariantBroken, match="undoes a revocation"):
        check_dids(state)


def test_invalid_device_of_an_unknown_manufacturer_breaks_devices(template, tmp_path):
    import msgspec

    from cityledger.core.errors import InvariantBroken
    from cityledger.modules.devices.invariants import check_devices
    from cityledger.modules.devices.keys import device_key
    from cityledger.modules.identity.keeper import KEEPER

    record = get_device(open_copy(template, tmp_path / "read").store, DEVICE_DIDS[0])
    for changes, match in (({"manufacturer": _did("fresh0", b"")}, "not an organisation"),
                           ({"owner": b"", "pending_owner": b""}, "at epoch"),
                           ({"pending_owner": record.owner}, "offered to its own owner")):
        state = corrupted(template, tmp_path / match.replace(" ", "-"),
                          {device_key(record.did): encode(msgspec.structs.replace(record, **changes))})
        with pytest.raises(InvariantBroken, match=match):
            check_devices(KEEPER, state)


def test_invalid_proposals_break_governance(template, tmp_path):
    from cityledger.core.errors import InvariantBroken
    from cityledger.modules.governance.invariants import check_consortium
    from cityledger.modules.governance.keys import NEXT_PROPOSAL_ID_KEY, proposal_key
    from cityledger.modules.governance.messages import Proposal

    proposer = KEYS["m0"].address()
    cases = [(Proposal(1, proposer, b"", 1, 5, [proposer], "executed", ""), "with outcome"),
             (Proposal(1, proposer, b"", 1, 5, [proposer, proposer], "open", ""), "not distinct"),
             (Proposal(2, proposer, b"", 1, 5, [proposer], "open", ""), "next id")]
    for index, (proposal, match) in enumerate(cases):
        state = corrupted(template, tmp_path / str(index), {proposal_key(proposal.id): encode(proposal),
                                                            NEXT_PROPOSAL_ID_KEY: (2).to_bytes(8, "big")})
        with pytest.raises(InvariantBroken, match=match):
            check_consortium(state)


def test_invalid_locked_funds_break_payments(template, tmp_path):
    from cityledger.core.errors import InvariantBroken
    from cityledger.core.keys import PrivateKey
    from cityledger.modules.bank.keeper import KEEPER as BANK
    from cityledger.modules.payments.invariants import check_payments
    from cityledger.modules.payments.keys import LOCKED_KEY, channel_key
    from cityledger.modules.payments.messages import ChannelRecord

    check_payments(BANK, corrupted(template, tmp_path / "clean", {}))
    key = PrivateKey(1, b"\x01" * 32).public_key
    channel = ChannelRecord(1, KEYS["a0"].address(), KEYS["a1"].address(), key, 100, 0, 0, 3, 0, "open", 1)
    for writes, match in (({LOCKED_KEY: (5).to_bytes(8, "big")}, "locked count is 5"),
                          ({channel_key(1): encode(channel), LOCKED_KEY: (100).to_bytes(8, "big")},
                           "payments account holds 0"),
                          ({channel_key(1): encode(msgspec_replace(channel, redeemed=101))}, "redeemed 101 of 100")):
        state = corrupted(template, tmp_path / match.replace(" ", "-"), writes)
        with pytest.raises(InvariantBroken, match=match):
            check_payments(BANK, state)


def msgspec_replace(record, **changes):
    import msgspec

    return msgspec.structs.replace(record, **changes)


def test_invalid_budgets_break_mobility(template, tmp_path):
    from cityledger.core.errors import InvariantBroken
    from cityledger.modules.bank.keeper import KEEPER as BANK
    from cityledger.modules.mobility.invariants import check_mobility
    from cityledger.modules.mobility.keys import programme_key
    from cityledger.modules.mobility.messages import ProgrammeRecord

    check_mobility(BANK, corrupted(template, tmp_path / "clean", {}))
    programme = ProgrammeRecord(1, KEYS["a0"].address(), "driving-score-v1", 100, 100, 60, 1, 1, 1, 1, 10, 50, "x",
                                0, False, 1)
    for record, match in ((programme, "mobility account holds 0"),
                          (msgspec_replace(programme, remaining=101), "101 left of 100"),
                          (msgspec_replace(programme, remaining=5, withdrawn=True), "withdrawn programme 1")):
        state = corrupted(template, tmp_path / match.replace(" ", "-"), {programme_key(1): encode(record)})
        with pytest.raises(InvariantBroken, match=match):
            check_mobility(BANK, state)


def test_mobility_draws_reach_a_paid_claim(template, tmp_path):
    """The pools above can pay a claim: a programme, a ticket and a claim in a row succeed."""
    replay = open_copy(template, tmp_path / "paid")
    for op in (_programme("a0", 1_000, START + 200), _ticket("a1", "car-1", 1, PSEUDONYM), _claim("a1", "fair", 1)):
        assert replay.block(*build_block(replay, [op])).tx_results[0].code == 0
    assert sum(1 for _ in replay.store.iter_prefix(b"\x06\x04")) == 1
    replay.app.check_invariants()
