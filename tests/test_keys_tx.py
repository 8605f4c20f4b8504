"""Keys, signers and the tx envelope: signing, verification, tampering, multisig."""

import pytest

from cityledger.core.errors import (
    ERR_CHAIN_ID,
    ERR_DECODE,
    ERR_NON_CANONICAL,
    ERR_SIGNATURE,
    ERR_TOO_LARGE,
    ERR_UNKNOWN_MESSAGE,
    TxError,
)
from cityledger.core.keys import (
    SCHEME_ED25519,
    SCHEME_P256,
    PrivateKey,
    PublicKey,
    Signer,
    compute_address,
    inspect_signer,
    is_strong_ed25519_key,
    make_signer,
    verify_ed25519_zip215,
    verify_signature,
)
from cityledger.core.encoding import encode
from cityledger.core.tx import SignatureEntry, Tx, TxBody
from cityledger.core.tx import TxCodec, build_tx, verify_tx_signatures
from cityledger.modules.bank import Transfer

from helpers import CHAIN_ID, assert_error_kind, fixed_key

CODEC = TxCodec([Transfer], CHAIN_ID)
DEST = bytes(20)


@pytest.mark.parametrize("scheme", [SCHEME_ED25519, SCHEME_P256])
def test_sign_and_verify(scheme):
    key = PrivateKey.generate(scheme)
    signature = key.sign(b"message")
    assert verify_signature(key.public_key, b"message", signature)
    assert not verify_signature(key.public_key, b"messagf", signature)
    assert not verify_signature(PrivateKey.generate(scheme).public_key, b"message", signature)


ED25519_ORDER = 2**252 + 27742317777372353535851937790883648493
IDENTITY_POINT = bytes([1]) + bytes(31)  # y = 1: the neutral element, of order 1
ORDER_4_POINT = bytes(32)  # y = 0: a point of order 4


def test_ed25519_rejects_non_canonical_s():
    """ZIP-215 requires s < L, so nobody can add L to s and change a tx's id."""
    key = PrivateKey.generate()
    signature = key.sign(b"message")
    s = int.from_bytes(signature[32:], "little")
    assert verify_signature(key.public_key, b"message", signature)
    assert not verify_signature(key.public_key, b"message", signature[:32] + (s + ED25519_ORDER).to_bytes(32, "little"))


def test_small_order_keys_cannot_be_forged_for():
    """Under ZIP-215 alone anyone can 'sign' any message for a small-order key; the key check refuses them."""
    forged = IDENTITY_POINT + bytes(32)  # R = identity, s = 0
    assert verify_ed25519_zip215(IDENTITY_POINT, b"pay everything to mallory", forged)
    for weak in (IDENTITY_POINT, ORDER_4_POINT):
        assert not is_strong_ed25519_key(weak)
        assert not verify_signature(PublicKey(SCHEME_ED25519, weak), b"pay everything to mallory", forged)
    assert is_strong_ed25519_key(PrivateKey.generate().public_key.key)


def test_tx_from_a_small_order_key_is_refused():
    weak = Signer(1, [PublicKey(SCHEME_ED25519, IDENTITY_POINT)])
    body = TxBody(CHAIN_ID, weak, 0, 0, [Transfer(DEST, 5)])
    raw = encode(Tx(body, [SignatureEntry(0, IDENTITY_POINT + bytes(32))]))
    with pytest.raises(TxError) as info:
        verify_tx_signatures(CODEC.decode(raw))
    assert info.value.field == "signatures"


def test_p256_signatures_are_low_s():
    key = PrivateKey.generate(SCHEME_P256)
    order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    for i in range(20):
        sig = key.sign(bytes([i]))
        s = int.from_bytes(sig[32:], "big")
        assert s <= order // 2
        high = sig[:32] + (order - s).to_bytes(32, "big")
        assert not verify_signature(key.public_key, bytes([i]), high)


@pytest.mark.parametrize("scheme", [SCHEME_ED25519, SCHEME_P256])
def test_tx_round_trip_and_verify(scheme):
    key = PrivateKey.generate(scheme)
    raw = build_tx(CHAIN_ID, [key], 7, [Transfer(DEST, 5)], expiry_height=100)
    decoded = CODEC.decode(raw)
    verify_tx_signatures(decoded)
    assert decoded.sender == key.address()
    assert decoded.nonce == 7 and decoded.messages == [Transfer(DEST, 5)]


def test_invalid_tampered_tx_fails_signature():
    key = fixed_key(0)
    raw = bytearray(build_tx(CHAIN_ID, [key], 0, [Transfer(DEST, 5)]))
    index = raw.index(bytes([5]))  # the amount byte
    raw[index] = 6
    decoded = CODEC.decode(bytes(raw))
    with pytest.raises(TxError) as info:
        verify_tx_signatures(decoded)
    assert_error_kind(info.value, ERR_SIGNATURE)
    assert "signature" in info.value.message


def test_multisig_two_of_three():
    keys = [fixed_key(i) for i in range(3)]
    signer = make_signer(2, [k.public_key for k in keys])
    raw = build_tx(CHAIN_ID, keys[:2], 0, [Transfer(DEST, 1)], signer=signer)
    decoded = CODEC.decode(raw)
    verify_tx_signatures(decoded)
    assert decoded.sender == compute_address(signer) != keys[0].address()


def test_remembered_signer_verdicts_match_a_fresh_check():
    keys = [fixed_key(i) for i in range(3)]
    good = make_signer(2, [k.public_key for k in keys])
    unsorted = Signer(1, list(reversed(good.keys)))  # same keys, not in canonical order
    for _ in range(2):  # the second round answers from what the first remembered
        assert inspect_signer(good) == (None, compute_address(good))
        problem, address = inspect_signer(unsorted)
        assert problem == "signer.keys: expected distinct keys sorted by their encoding" and address is None
    raw = build_tx(CHAIN_ID, keys[:1], 0, [Transfer(DEST, 1)], signer=Signer(1, list(reversed(good.keys))))
    with pytest.raises(TxError) as info:  # a remembered bad verdict still refuses the tx
        CODEC.decode(raw)
    assert info.value.field == "body.signer" and "sorted" in info.value.message


def test_invalid_multisig_below_threshold():
    keys = [fixed_key(i) for i in range(3)]
    signer = make_signer(2, [k.public_key for k in keys])
    raw = build_tx(CHAIN_ID, keys[:1], 0, [Transfer(DEST, 1)], signer=signer)
    with pytest.raises(TxError) as info:
        CODEC.decode(raw)
    assert_error_kind(info.value, ERR_SIGNATURE)
    assert "at least 2 signatures" in info.value.message


@pytest.mark.parametrize("indexes", [[0, 0], [1, 0], [0, 3], [-1, 0], [2, 1, 0]])
def test_invalid_signature_indexes_are_refused(indexes):
    """Indexes must be distinct, increasing and name keys of the signer (here 3 keys, threshold 2)."""
    keys = [fixed_key(i) for i in range(3)]
    signer = make_signer(2, [k.public_key for k in keys])
    body = TxBody(CHAIN_ID, signer, 0, 0, [Transfer(DEST, 1)])
    raw = encode(Tx(body, [SignatureEntry(i, bytes(64)) for i in indexes]))
    with pytest.raises(TxError) as info:
        CODEC.decode(raw)
    assert_error_kind(info.value, ERR_SIGNATURE)
    assert info.value.field == "signatures" and "distinct key indexes in increasing order" in info.value.message
    assert "signer's 3 keys" in info.value.message


def test_invalid_wrong_chain_id():
    raw = build_tx("other-chain", [fixed_key(0)], 0, [Transfer(DEST, 1)])
    with pytest.raises(TxError) as info:
        CODEC.decode(raw)
    assert_error_kind(info.value, ERR_CHAIN_ID)
    assert info.value.field == "body.chain_id" and "other-chain" in info.value.message


def test_invalid_unknown_message_type():
    from cityledger.modules.governance import Vote

    raw = build_tx(CHAIN_ID, [fixed_key(0)], 0, [Vote(1, True)])
    with pytest.raises(TxError) as info:
        CODEC.decode(raw)
    assert_error_kind(info.value, ERR_UNKNOWN_MESSAGE)
    assert "bank/1.0/transfer" in info.value.message  # the error lists the known types


def test_invalid_non_canonical_encoding():
    import msgspec

    enc = msgspec.msgpack.encode
    raw = build_tx(CHAIN_ID, [fixed_key(0)], 0, [Transfer(DEST, 5)])
    body, signatures = msgspec.msgpack.decode(raw)
    chain_id, signer, nonce, expiry, messages = body
    # The same tx with its nonce written as a 64-bit integer instead of the shortest form (a fixint).
    wide = b"\x92" + b"\x95" + enc(chain_id) + enc(signer) + b"\xcf" + nonce.to_bytes(8, "big") + enc(expiry) + \
        enc(messages) + enc(signatures)
    assert msgspec.msgpack.decode(wide) == msgspec.msgpack.decode(raw) and wide != raw
    with pytest.raises(TxError) as info:
        CODEC.decode(wide)
    assert_error_kind(info.value, ERR_NON_CANONICAL)
    assert "non-canonical" in info.value.message


@pytest.mark.parametrize("blob", [b"", b"\x00", b"\xff" * 10, b"\x92\x01", bytes(range(256))])
def test_invalid_random_bytes(blob):
    with pytest.raises(TxError) as info:
        CODEC.decode(blob)
    assert info.value.codespace == "tx" and info.value.code in (ERR_DECODE.code, ERR_NON_CANONICAL.code)


def test_invalid_oversize_tx():
    with pytest.raises(TxError) as info:
        CODEC.decode(b"\x00" * (256 * 1024 + 1))
    assert_error_kind(info.value, ERR_TOO_LARGE)
