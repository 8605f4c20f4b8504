"""The device-side format and the gateway's pure check: seal, sign, verify, refuse; Merkle anchoring."""

from __future__ import annotations

import dataclasses
import random

import pytest

from cityledger.core.encoding import decoder, encode
from cityledger.core.hashing import sha256
from cityledger.core.keys import SCHEME_P256
from cityledger.offchain.telemetry import (
    MAX_CONSUMER_WRAPS,
    MAX_MESSAGE_BYTES,
    MAX_WINDOW_S,
    InclusionProof,
    Sample,
    SequenceCounter,
    TelemetryError,
    TelemetryMessage,
    VaultKey,
    compute_inclusion_proof,
    compute_inclusion_proofs,
    compute_records_root,
    group_windows,
    is_included,
    open_record,
    verify_message,
)
from cityledger.offchain.telemetry.crypto import decrypt_window, unwrap_data_key
from cityledger.offchain.telemetry.format import compute_nonce

from telemetry_helpers import Fleet, vehicle_samples

_MESSAGE = decoder(TelemetryMessage)


@pytest.fixture
def fleet(tmp_path):
    return Fleet(VaultKey.generate(), tmp_path)


def _refused(raw: bytes, fleet: Fleet, last_seq: int | None, code: str) -> TelemetryError:
    with pytest.raises(TelemetryError) as caught:
        verify_message(raw, fleet.lookup, last_seq)
    assert caught.value.code == code, caught.value
    return caught.value


def test_round_trip_gives_exactly_the_samples(fleet):
    device = fleet.add()
    samples = vehicle_samples(random.Random(1), 1_700_000_000)
    verified = verify_message(device.seal(1_700_000_000, samples), fleet.lookup, None)
    assert verified.owner == "city" + "ab" * 20 and verified.gap == 0
    assert open_record(verified.stored, verified.owner_wrap, fleet.owner_key) == samples


def test_round_trip_p256_device_and_partial_window(fleet):
    device = fleet.add(scheme=SCHEME_P256)
    samples = vehicle_samples(random.Random(2), 1_700_000_010, count=3)
    verified = verify_message(device.seal(1_700_000_010, samples), fleet.lookup, None)
    assert open_record(verified.stored, verified.owner_wrap, fleet.owner_key) == samples


def test_ciphertext_length_does_not_depend_on_values_or_count(fleet):
    device = fleet.add()
    rng = random.Random(3)
    lengths = {len(_MESSAGE.decode(device.seal(100, vehicle_samples(rng, 100, count))).ciphertext) for count in (0, 1, 10)}
    lengths.add(len(_MESSAGE.decode(device.seal(110, [Sample(110, (0, 0, 0))])).ciphertext))
    assert len(lengths) == 1


def test_consumer_wrap_opens_for_that_consumer_only(fleet):
    device = fleet.add()
    consumer, stranger = VaultKey.generate(), VaultKey.generate()
    samples = vehicle_samples(random.Random(4), 50)
    verified = verify_message(device.seal(50, samples, [consumer.public]), fleet.lookup, None)
    [wrap] = verified.consumer_wraps
    assert open_record(verified.stored, wrap, consumer) == samples
    for key in (stranger, fleet.owner_key):
        with pytest.raises(TelemetryError):
            open_record(verified.stored, wrap, key)
    with pytest.raises(TelemetryError):
        open_record(verified.stored, verified.owner_wrap, consumer)


def test_sequence_numbers_are_durable_and_nonces_distinct(fleet, tmp_path):
    device = fleet.add()
    seqs = [_MESSAGE.decode(device.seal(10 * i, [])).header.seq for i in range(3)]
    again = SequenceCounter(device.counter.path)  # a restarted device reads the same file
    assert seqs == [0, 1, 2] and again.take() == 3
    assert len({compute_nonce(seq) for seq in seqs}) == 3 and compute_nonce(2).endswith((2).to_bytes(8, "big"))


def test_gap_is_reported(fleet):
    device = fleet.add()
    messages = [device.seal(10 * i, []) for i in range(4)]
    assert verify_message(messages[3], fleet.lookup, 0).gap == 2
    assert verify_message(messages[1], fleet.lookup, 0).gap == 0


def test_invalid_replay_and_reorder(fleet):
    device = fleet.add()
    first, second = device.seal(0, []), device.seal(10, [])
    verify_message(first, fleet.lookup, None)
    _refused(first, fleet, 0, "replay")
    verify_message(second, fleet.lookup, 0)
    _refused(first, fleet, 1, "replay")  # the older message arriving after the newer one


def test_invalid_forged_signature(fleet):
    device = fleet.add()
    message = _MESSAGE.decode(device.seal(0, vehicle_samples(random.Random(5), 0)))
    forged_sig = message.signature[:-1] + bytes([message.signature[-1] ^ 1])
    _refused(encode(TelemetryMessage(message.header, message.ciphertext, message.owner_wrap, [], forged_sig)),
             fleet, None, "bad_signature")
    flipped = bytes([message.ciphertext[0] ^ 1]) + message.ciphertext[1:]
    _refused(encode(TelemetryMessage(message.header, flipped, message.owner_wrap, [], message.signature)),
             fleet, None, "bad_signature")
    # A consumer wrap slipped in by the broker or gateway breaks the signature too.
    extra = message.owner_wrap.__class__(VaultKey.generate().public, message.owner_wrap.enc, message.owner_wrap.ct)
    _refused(encode(TelemetryMessage(message.header, message.ciphertext, message.owner_wrap, [extra],
                                     message.signature)), fleet, None, "bad_signature")


def test_invalid_signature_by_another_registered_device(fleet):
    device, other = fleet.add(), fleet.add()
    message = _MESSAGE.decode(device.seal(0, []))
    signed_by_other = _MESSAGE.decode(other.seal(0, []))
    _refused(encode(TelemetryMessage(message.header, message.ciphertext, message.owner_wrap, [],
                                     signed_by_other.signature)), fleet, None, "bad_signature")


def test_invalid_header_changes_are_refused_and_do_not_decrypt(fleet):
    device = fleet.add()
    message = _MESSAGE.decode(device.seal(0, vehicle_samples(random.Random(6), 0)))
    moved = message.header.__class__(*[getattr(message.header, f) for f in message.header.__struct_fields__[:3]],
                                     "ds-other", *[getattr(message.header, f) for f in message.header.__struct_fields__[4:]])
    _refused(encode(TelemetryMessage(moved, message.ciphertext, message.owner_wrap, [], message.signature)),
             fleet, None, "bad_signature")
    # Even past the signature, the header is the ciphertext's associated data: the wrong AD opens nothing.
    data_key = unwrap_data_key(message.owner_wrap, fleet.owner_key, message.header)
    assert decrypt_window(data_key, message.header, message.ciphertext)
    with pytest.raises(TelemetryError) as caught:
        decrypt_window(data_key, moved, message.ciphertext)
    assert caught.value.code == "undecryptable"
    with pytest.raises(TelemetryError):
        unwrap_data_key(message.owner_wrap, fleet.owner_key, moved)


def test_invalid_unknown_device(fleet, tmp_path):
    stranger = Fleet(fleet.owner_key, tmp_path).add()
    _refused(stranger.seal(0, []), fleet, None, "unknown_device")


def test_invalid_wrong_owner_key(fleet, tmp_path):
    device = fleet.add()
    other_owner = Fleet(VaultKey.generate(), tmp_path / "x")
    (tmp_path / "x").mkdir()
    rogue = other_owner.add()
    fleet.registry[rogue.config.device_did] = fleet.registry[device.config.device_did].__class__(
        rogue.config.device_did, rogue.key.public_key, "city" + "ab" * 20, fleet.owner_key.public)
    error = _refused(rogue.seal(0, []), fleet, None, "wrong_owner")
    assert error.field == "owner_wrap.recipient"


def test_invalid_malformed_and_oversized(fleet):
    _refused(b"\x00garbage", fleet, None, "malformed")
    _refused(bytes(MAX_MESSAGE_BYTES + 1), fleet, None, "too_large")
    device = fleet.add()
    message = _MESSAGE.decode(device.seal(0, []))
    short = message.ciphertext[:-1]
    _refused(encode(TelemetryMessage(message.header, short, message.owner_wrap, [], message.signature)),
             fleet, None, "malformed")


@pytest.mark.parametrize("sample, field", [
    (Sample(0, (1, 2, 3.0)), "samples[0].speed_cm_s"),
    (Sample(0, (1, 2)), "samples[0].values"),
    (Sample(10, (1, 2, 3)), "samples[0].t_s"),
    (Sample(0, (900_000_001, 2, 3)), "samples[0].lat_e7"),
])
def test_invalid_samples_name_the_field_and_spend_no_sequence(fleet, sample, field):
    device = fleet.add()
    with pytest.raises(TelemetryError) as caught:
        device.seal(0, [sample])
    assert caught.value.field == field and device.counter.peek() == 0


def test_group_windows_cuts_at_window_boundaries():
    samples = [Sample(t, (0, 0, 0)) for t in (8, 9, 10, 19, 20)]
    assert [(start, [s.t_s for s in group]) for start, group in group_windows(samples, 10)] == [
        (0, [8, 9]), (10, [10, 19]), (20, [20])]


def _reference_root(leaves: list[bytes]) -> bytes:
    """RFC 9162's recursive definition, written independently of anchor.py."""
    if len(leaves) == 1:
        return sha256(b"\x00" + leaves[0])
    split = 1
    while split * 2 < len(leaves):
        split *= 2
    return sha256(b"\x01" + _reference_root(leaves[:split]) + _reference_root(leaves[split:]))


def test_records_root_matches_rfc9162_and_every_proof_verifies():
    assert compute_records_root([]) == sha256(b"")
    for size in range(1, 34):
        ids = [sha256(bytes([size, i])) for i in range(size)]
        root = compute_records_root(ids)
        assert root == _reference_root(ids)
        proofs = compute_inclusion_proofs(ids)
        for index, record_id in enumerate(ids):
            assert proofs[index] == compute_inclusion_proof(ids, index)
            assert is_included(root, record_id, proofs[index])


def test_invalid_inclusion_proofs_fail():
    ids = [sha256(bytes([i])) for i in range(11)]
    root = compute_records_root(ids)
    proof = compute_inclusion_proof(ids, 6)
    assert is_included(root, ids[6], proof)
    assert not is_included(root, ids[5], proof)
    assert not is_included(root, ids[6], InclusionProof(5, 11, proof.path))
    # RFC 9162 binds the size only through the proof's shape: the anchor records the count beside the root.
    assert not is_included(root, ids[6], InclusionProof(6, 7, proof.path))
    assert not is_included(root, ids[6], InclusionProof(6, 6, proof.path))
    assert not is_included(root, ids[6], InclusionProof(6, 11, proof.path[:-1]))
    bent = (bytes([proof.path[0][0] ^ 1]) + proof.path[0][1:],) + proof.path[1:]
    assert not is_included(root, ids[6], InclusionProof(6, 11, bent))
    assert not is_included(compute_records_root(ids[:10]), ids[6], proof)
    with pytest.raises(ValueError, match="record_ids"):
        compute_records_root([b"short"])


def test_invalid_every_single_byte_change_is_refused(fleet):
    """Whatever byte of a valid message a broker changes, the gateway refuses it with a TelemetryError."""
    device = fleet.add()
    raw = device.seal(0, vehicle_samples(random.Random(7), 0, count=2), [VaultKey.generate().public])
    verify_message(raw, fleet.lookup, None)
    codes = set()
    for index in range(len(raw)):
        for flip in (0x01, 0x80):
            changed = raw[:index] + bytes([raw[index] ^ flip]) + raw[index + 1:]
            with pytest.raises(TelemetryError) as caught:
                verify_message(changed, fleet.lookup, None)
            codes.add(caught.value.code)
    assert codes <= {"malformed", "bad_signature", "unknown_device", "wrong_owner"} and "bad_signature" in codes


def test_the_largest_valid_message_fits_the_size_limit(fleet):
    device = fleet.add(schema="charger/1")
    device = device.__class__(device.key, dataclasses.replace(device.config, window_s=MAX_WINDOW_S,
                                                              device_did="did:city:" + "z" * 32), device.counter)
    fleet.registry["did:city:" + "z" * 32] = dataclasses.replace(fleet.registry[next(iter(fleet.registry))],
                                                                 did="did:city:" + "z" * 32)
    samples = [Sample(t, (2**40, 2**31, 1000)) for t in range(MAX_WINDOW_S)]
    consumers = [VaultKey.generate().public for _ in range(MAX_CONSUMER_WRAPS)]
    raw = device.seal(0, samples, consumers)
    assert len(raw) <= MAX_MESSAGE_BYTES
    assert open_record(verify_message(raw, fleet.lookup, None).stored,
                       verify_message(raw, fleet.lookup, None).owner_wrap, fleet.owner_key) == samples


def _rfc9180_open(wrap_enc: bytes, wrap_ct: bytes, private: bytes, aad: bytes, info: bytes) -> bytes:
    """RFC 9180 base-mode open for DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM, written from
    the RFC with `cryptography` alone: the wraps are standard HPKE that any implementation opens."""
    import hmac

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

    def extract(suite: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
        return hmac.new(salt or bytes(32), b"HPKE-v1" + suite + label + ikm, "sha256").digest()

    def expand(suite: bytes, prk: bytes, label: bytes, context: bytes, length: int) -> bytes:
        labeled = length.to_bytes(2, "big") + b"HPKE-v1" + suite + label + context
        return HKDFExpand(hashes.SHA256(), length, labeled).derive(prk)

    kem_suite, suite = b"KEM\x00\x20", b"HPKE\x00\x20\x00\x01\x00\x02"
    key = X25519PrivateKey.from_private_bytes(private)
    dh = key.exchange(X25519PublicKey.from_public_bytes(wrap_enc))
    recipient = key.public_key().public_bytes_raw()
    shared = expand(kem_suite, extract(kem_suite, b"", b"eae_prk", dh), b"shared_secret", wrap_enc + recipient, 32)
    context = b"\x00" + extract(suite, b"", b"psk_id_hash", b"") + extract(suite, b"", b"info_hash", info)
    secret = extract(suite, shared, b"secret", b"")
    aead_key, nonce = expand(suite, secret, b"key", context, 32), expand(suite, secret, b"base_nonce", context, 12)
    return AESGCM(aead_key).decrypt(nonce, wrap_ct, aad)


def test_wraps_are_standard_hpke(fleet):
    from cityledger.offchain.telemetry.crypto import WRAP_INFO, compute_wrap_aad

    device = fleet.add()
    message = _MESSAGE.decode(device.seal(0, vehicle_samples(random.Random(8), 0)))
    data_key = _rfc9180_open(message.owner_wrap.enc, message.owner_wrap.ct, fleet.owner_key.private_bytes(),
                             compute_wrap_aad(message.header), WRAP_INFO)
    assert data_key == unwrap_data_key(message.owner_wrap, fleet.owner_key, message.header)
    assert len(decrypt_window(data_key, message.header, message.ciphertext)) > 0


@pytest.mark.parametrize("bad_key", [bytes(32), b"\x01" + bytes(31), bytes(31)])
def test_invalid_recipient_keys_are_refused_at_sealing(fleet, bad_key):
    """A low-order point (no one could open the wrap) or a key of the wrong length."""
    device = fleet.add()
    with pytest.raises(TelemetryError) as caught:
        device.seal(0, [], [bad_key])
    assert caught.value.field == "consumer_keys[0]"
