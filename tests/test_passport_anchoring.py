"""Per-passport access-log chains and their automatic anchoring (offchain/passport/anchoring.py) through
the real app: one root per interval whatever the reads, proofs each owner can check, an omitted entry
found, a crash at any point anchoring nothing twice, and every refusal of anchor_log_root."""

from __future__ import annotations

import dataclasses

import pytest

from passport_example import example
from test_batteries import H, Batteries, passport_id, unchanged
from test_identity_fixtures import City
from cityledger.modules.batteries import ROLE_PASSPORT_SERVICE, AnchorLogRoot, get_log_root
from cityledger.modules.batteries import errors as E
from cityledger.node.home import PassportsConfig, load_config
from cityledger.offchain.passport import LogBroken, PassportStore, new_master_key, verify_chain
from cityledger.offchain.passport.accesslog import GENESIS_HEX, compute_entry_hash
from cityledger.offchain.passport.anchoring import LogAnchorer, verify_log_against_anchors

PIDS = [passport_id(0x40 + i) for i in range(3)]


def read(store: PassportStore, pid: str, height: int) -> None:
    store.read_tier(pid, "legitimate", proof_ok=True, reader_did="did:city:reader", height=height, time_s=height)


def open_store(folder, key: bytes) -> PassportStore:
    store = PassportStore(folder, key)
    for pid in PIDS:
        if not store.get_versions(pid, "public"):
            document = example()
            document["metadata"]["passportIdentifier"] = pid
            store.put_document(document)
    return store


class LedgerChain:
    """The anchorer's view of the real ledger, for one accredited passport service."""

    def __init__(self, world: Batteries, service) -> None:
        self.world, self.service, self.sent = world, service, 0

    def last_seq(self) -> int:
        root = get_log_root(self.world.ledger.store, self.service.did)
        return 0 if root is None else root.seq

    def root_at(self, seq: int):
        root = get_log_root(self.world.ledger.store, self.service.did, seq)
        return None if root is None else (root.root, root.height)

    def send(self, seq: int, root: bytes, size: int) -> int:
        outcome = self.world.send(self.service, AnchorLogRoot(self.service.did, seq, root, size))
        outcome.raise_for_error()
        self.sent += 1
        return outcome.height


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    world = Batteries(City(tmp_path_factory.mktemp("passport-anchoring")))
    world.service = world._org("passport-service", 0x88, ROLE_PASSPORT_SERVICE)
    world.services = 0
    return world


def new_chain(world: Batteries) -> LedgerChain:
    """A newly accredited passport service: one per store, as one node's service is one DID."""
    world.services += 1
    return LedgerChain(world, world._org(f"service-{world.services}", 0x60 + world.services, ROLE_PASSPORT_SERVICE))


def roots_of(chain: LedgerChain, proofs) -> dict:
    return {p.seq: (chain.root_at(p.seq)[0], get_log_root(chain.world.ledger.store, chain.service.did, p.seq).size)
            for p in proofs}


def test_each_passport_has_a_chain_of_its_own(tmp_path):
    store = open_store(tmp_path, new_master_key())
    read(store, PIDS[0], 1)
    head = store.get_log_head(PIDS[0])
    for height in range(2, 5):
        read(store, PIDS[1], height)  # reads of another passport do not move this one's head
    assert store.get_log_head(PIDS[0]) == head == (1, store.get_log(PIDS[0])[0].hash_hex)
    entries = store.get_log(PIDS[1])
    assert [e.seq for e in entries] == [1, 2, 3] and entries[0].prev_hex == GENESIS_HEX
    assert store.verify_log(PIDS[1]) == store.get_log_head(PIDS[1])[1] == entries[-1].hash_hex
    with pytest.raises(LogBroken) as caught:  # one passport's entries cannot pass for another's
        verify_chain(store.get_log(PIDS[0]) + entries[1:], passport_id=PIDS[0])
    assert caught.value.field == "passport_id"


def test_one_root_per_interval_whatever_the_reads(world, tmp_path):
    store = open_store(tmp_path, new_master_key())
    chain = new_chain(world)
    anchorer = LogAnchorer(store, chain)
    for height in range(10):
        read(store, PIDS[height % 3], height)
    first = anchorer.anchor_once()
    assert chain.sent == 1 and first.seq == chain.last_seq() and len(first.leaves) == 3
    assert anchorer.anchor_once() is None and chain.sent == 1  # nothing moved: nothing sent
    read(store, PIDS[2], 11)
    second = anchorer.anchor_once()
    assert chain.sent == 2 and [leaf.passport_id for leaf in second.leaves] == [PIDS[2]]
    for pid in PIDS:
        proofs = store.get_anchor_proofs(pid)
        assert verify_log_against_anchors(store.get_log(pid), proofs, roots_of(chain, proofs)) \
            == store.get_log_head(pid)[0]
    assert [p.seq for p in store.get_anchor_proofs(PIDS[2])] == [first.seq, second.seq]
    answer = world.ledger.query("/batteries/log_root", service=chain.service.did)
    assert (answer["seq"], answer["size"], answer["root"]) == (second.seq, 1, second.root.hex())


def test_invalid_log_with_an_entry_omitted_is_found(world, tmp_path):
    store = open_store(tmp_path, new_master_key())
    chain = new_chain(world)
    for height in range(4):
        read(store, PIDS[0], height)
    LogAnchorer(store, chain).anchor_once()
    entries, proofs = store.get_log(PIDS[0]), store.get_anchor_proofs(PIDS[0])
    roots = roots_of(chain, proofs)
    # The service drops entry 2 and re-hashes the rest into a chain that verifies on its own.
    forged, prev = [], GENESIS_HEX
    for seq, entry in enumerate(entries[:1] + entries[2:], start=1):
        digest = compute_entry_hash(seq, entry.passport_id, entry.tier, entry.version, entry.reader_did,
                                    entry.height, entry.time_s, prev)
        forged.append(dataclasses.replace(entry, seq=seq, prev_hex=prev, hash_hex=digest))
        prev = digest
    assert verify_chain(forged) == prev
    with pytest.raises(LogBroken) as caught:
        verify_log_against_anchors(forged, proofs, roots)
    assert caught.value.field == "entries"
    with pytest.raises(LogBroken):  # the last entries cut off
        verify_log_against_anchors(entries[:3], proofs, roots)
    other = {seq: (H[5], size) for seq, (_, size) in roots.items()}
    with pytest.raises(LogBroken) as caught:  # a root other than the chain's
        verify_log_against_anchors(entries, proofs, other)
    assert caught.value.field == "proof"


@pytest.mark.parametrize("crash", ["before_send", "after_send"])
def test_crash_then_restart_anchors_once(world, tmp_path, crash):
    key = new_master_key()
    store = open_store(tmp_path, key)
    chain = new_chain(world)
    read(store, PIDS[1], 1)
    pending = store.prepare_anchor(16)
    if crash == "after_send":
        chain.send(pending.seq, pending.root, len(pending.leaves))
    store.close()  # the node dies here: prepared (and maybe sent), never confirmed
    before = chain.sent
    store = open_store(tmp_path, key)
    done = LogAnchorer(store, chain).anchor_once()
    assert (done.seq, done.root) == (pending.seq, pending.root) and chain.last_seq() == pending.seq
    assert chain.sent == before + (crash == "before_send")
    assert LogAnchorer(store, chain).anchor_once() is None
    (proof,) = store.get_anchor_proofs(PIDS[1])
    assert proof.seq == pending.seq and proof.height == chain.root_at(pending.seq)[1]


@pytest.mark.parametrize("case", ["not_accredited", "not_controller", "replayed_seq", "skipped_seq", "short_root",
                                  "size_zero", "size_too_large"])
def test_invalid_anchor_log_root(world, case):
    service = world.service
    if get_log_root(world.ledger.store, service.did) is None:
        world.send(service, AnchorLogRoot(service.did, 1, H[1], 1)).raise_for_error()
    last = get_log_root(world.ledger.store, service.did).seq
    org, message, kind = {
        "not_accredited": (world.recycler, AnchorLogRoot(world.recycler.did, 1, H[2], 1), E.ERR_WRONG_ROLE),
        "not_controller": (world.maker, AnchorLogRoot(service.did, last + 1, H[2], 1), E.ERR_WRONG_ROLE),
        "replayed_seq": (service, AnchorLogRoot(service.did, last, H[2], 1), E.ERR_LOG_ANCHOR),
        "skipped_seq": (service, AnchorLogRoot(service.did, last + 2, H[2], 1), E.ERR_LOG_ANCHOR),
        "short_root": (service, AnchorLogRoot(service.did, last + 1, H[2][:31], 1), E.ERR_LOG_ANCHOR),
        "size_zero": (service, AnchorLogRoot(service.did, last + 1, H[2], 0), E.ERR_LOG_ANCHOR),
        "size_too_large": (service, AnchorLogRoot(service.did, last + 1, H[2], (1 << 16) + 1), E.ERR_LOG_ANCHOR),
    }[case]
    before = world.dump()
    world.refused(world.send(org, message), kind)
    unchanged(world, before)


@pytest.mark.parametrize("setting,expected", [("anchor_interval_s = 0", "passports.anchor_interval_s"),
                                              ("anchor_interval_s = 86401", "passports.anchor_interval_s"),
                                              ('anchor_key = "../key.json"', "passports.anchor_key"),
                                              ("anchor_every = 5", "passports.anchor_every"),
                                              ('anchor = "yes"', "passports.anchor"),
                                              ("verify_workers = 0", "passports.verify_workers"),
                                              ("verify_workers = 65", "passports.verify_workers")])
def test_invalid_passports_settings_name_the_field(tmp_path, setting, expected):
    (tmp_path / "config.toml").write_text(f"[passports]\n{setting}\n")
    with pytest.raises(ValueError) as caught:
        load_config(tmp_path)
    assert str(caught.value).startswith(expected)


def test_passports_settings_default_off_and_read(tmp_path):
    (tmp_path / "config.toml").write_text("[passports]\nanchor = true\nanchor_interval_s = 5\n")
    assert load_config(tmp_path).passports == PassportsConfig(anchor=True, anchor_interval_s=5)
    (tmp_path / "config.toml").write_text("")
    assert load_config(tmp_path).passports.anchor is False


@pytest.mark.slow
def test_signature_pool_verifies_on_workers_as_in_the_thread():
    from cityledger.core.keys import PrivateKey
    from cityledger.offchain.passport.reports import MIN_POOL_CHECKS, SignaturePool, verify_signatures

    keys = [PrivateKey(scheme, bytes([seed]) * 32) for scheme, seed in ((1, 3), (2, 4))]
    checks = []
    for index in range(MIN_POOL_CHECKS + 6):
        key, message = keys[index % 2], b"report %d" % index
        signature = key.sign(message) if index != 40 else keys[0].sign(b"another message")
        checks.append(([(key.public_key.scheme, key.public_key.key)], message, signature))
    pool = SignaturePool(2)
    pool.start()
    try:
        verdicts = pool.verify(checks)
    finally:
        pool.stop()
    assert verdicts == verify_signatures(checks) and verdicts.count(False) == 1 and not verdicts[40]
