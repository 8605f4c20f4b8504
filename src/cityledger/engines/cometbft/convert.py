"""Pure conversions between CometBFT's ABCI protobuf messages and the app's dataclasses (app/abc.py).

The responses sent once or more per transaction (CheckTx, and FinalizeBlock's per-tx results) are
written straight to protobuf wire bytes by the encode_* functions: building them as protobuf
objects cost about as many instructions as a recheck in the app. The rest go through the
generated classes.
"""

from __future__ import annotations

from cityledger.app.abc import (
    CommitVotes,
    BlockRequest,
    FinalizeBlockResult,
    InfoResult,
    InitChainRequest,
    InitChainResult,
    Misbehavior,
    QueryResult,
    Snapshot,
    TxResult,
)
from cityledger.core.events import Event, ValidatorUpdate
from cityledger.engines.cometbft.framing import encode_uvarint
from cityledger.engines.cometbft.proto import abci, crypto_keys, crypto_proof, types_validator

NS_PER_S = 1_000_000_000
# The type of the single ProofOp that carries the app's canonical proof encoding in ResponseQuery.
PROOF_OP_TYPE = "cityledger:tree"
# Every attribute is indexed, so that CometBFT's tx indexer can search txs by event.
INDEX_EVENT_ATTRIBUTES = True
PUB_KEY_TYPES = ("ed25519", "secp256k1")  # the fields of tendermint.crypto.PublicKey's oneof


# -- protobuf -> app ---------------------------------------------------------------------------

def compute_time_ns(timestamp) -> int:
    """A google.protobuf.Timestamp as integer nanoseconds since the Unix epoch."""
    return timestamp.seconds * NS_PER_S + timestamp.nanos


def compute_validator_update(update) -> ValidatorUpdate:
    """An abci.ValidatorUpdate as the app's ValidatorUpdate."""
    key_type = update.pub_key.WhichOneof("sum")
    if key_type is None:
        raise ValueError("validator update without a public key")
    return ValidatorUpdate(pub_key_type=key_type, pub_key=getattr(update.pub_key, key_type), power=update.power)


def compute_misbehavior(item) -> Misbehavior:
    """An abci.Misbehavior as a Misbehavior."""
    return Misbehavior(
        type=abci.MisbehaviorType.Name(item.type).lower(),
        validator_address=item.validator.address,
        validator_power=item.validator.power,
        height=item.height,
        time_ns=compute_time_ns(item.time),
        total_voting_power=item.total_voting_power,
    )


def compute_commit_votes(height: int, commit_info) -> CommitVotes:
    """A CommitInfo (FinalizeBlock's decided_last_commit, the votes for `height`) as CommitVotes."""
    return CommitVotes(height=height, votes=tuple(
        (vote.validator.address, vote.validator.power, vote.block_id_flag == types_validator.BLOCK_ID_FLAG_COMMIT)
        for vote in commit_info.votes))


def compute_block_request(request) -> BlockRequest:
    """A RequestPrepareProposal / ProcessProposal / FinalizeBlock as a BlockRequest."""
    return BlockRequest(
        height=request.height,
        time_ns=compute_time_ns(request.time),
        txs=tuple(request.txs),
        proposer_address=request.proposer_address,
        # PrepareProposal has no hash yet: the block is not built.
        hash=getattr(request, "hash", b""),
        misbehavior=tuple(compute_misbehavior(m) for m in request.misbehavior),
    )


def compute_init_chain_request(request) -> InitChainRequest:
    """A RequestInitChain as an InitChainRequest."""
    return InitChainRequest(
        chain_id=request.chain_id,
        time_ns=compute_time_ns(request.time),
        initial_height=request.initial_height,
        app_state_bytes=request.app_state_bytes,
        validators=tuple(compute_validator_update(v) for v in request.validators),
    )


def compute_snapshot(snapshot) -> Snapshot:
    """An abci.Snapshot as the app's Snapshot."""
    return Snapshot(
        height=snapshot.height,
        format=snapshot.format,
        chunks=snapshot.chunks,
        hash=snapshot.hash,
        metadata=snapshot.metadata,
    )


# -- app -> protobuf ---------------------------------------------------------------------------

def to_pb_validator_update(update: ValidatorUpdate):
    """The app's ValidatorUpdate as an abci.ValidatorUpdate."""
    if update.pub_key_type not in PUB_KEY_TYPES:
        raise ValueError(f"validator update: unsupported pub_key_type {update.pub_key_type!r}")
    pub_key = crypto_keys.PublicKey(**{update.pub_key_type: update.pub_key})
    return abci.ValidatorUpdate(pub_key=pub_key, power=update.power)


# -- app -> protobuf wire bytes (the per-tx responses) -------------------------------------------

UINT32_MAX = 2**32 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_INDEX_FIELD = b"\x18\x01" if INDEX_EVENT_ATTRIBUTES else b""  # EventAttribute.index = true
MAX_CACHED_NAMES = 4096
_NAME_FIELDS: dict[str, bytes] = {}
_LENGTH_BYTES = tuple(encode_uvarint(n) for n in range(0x80))  # lengths under 128 are one byte


def encode_int64(value: int) -> bytes:
    """An int64 as a protobuf varint (a negative one as its 64-bit two's complement, 10 bytes)."""
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValueError(f"int64 out of range: {value}")
    return encode_uvarint(value if value >= 0 else value + 2**64)


def encode_field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field (bytes, string or message): tag, length, payload."""
    return tag + encode_uvarint(len(payload)) + payload


def compute_name_field(name: str) -> bytes:
    """Field 1 (string) holding name: an Event's type or an EventAttribute's key. These repeat from
    tx to tx, so their encodings are kept (up to MAX_CACHED_NAMES)."""
    field = _NAME_FIELDS.get(name)
    if field is None:
        field = encode_field(b"\x0a", name.encode()) if name else b""
        if len(_NAME_FIELDS) < MAX_CACHED_NAMES:
            _NAME_FIELDS[name] = field
    return field


def encode_event(event: Event) -> bytes:
    """The app's Event as the wire bytes of an abci.Event."""
    out = _NAME_FIELDS.get(event.type) or compute_name_field(event.type)
    for key, value in event.attributes:
        data = value.encode()
        name = _NAME_FIELDS.get(key) or compute_name_field(key)
        if len(data) < 0x80:  # the usual case: every length a single byte, no calls
            attribute = name + b"\x12" + _LENGTH_BYTES[len(data)] + data + _INDEX_FIELD if data else name + _INDEX_FIELD
        else:
            attribute = name + encode_field(b"\x12", data) + _INDEX_FIELD
        if len(attribute) < 0x80:
            out += b"\x12" + _LENGTH_BYTES[len(attribute)] + attribute
        else:
            out += encode_field(b"\x12", attribute)
    return out


def encode_tx_result(result: TxResult) -> bytes:
    """A TxResult as the wire bytes of a ResponseCheckTx or an ExecTxResult: the two messages have
    the same fields under the same numbers (sender, nonce, priority have none in 0.38)."""
    out = b""
    if result.code:
        if not 0 <= result.code <= UINT32_MAX:
            raise ValueError(f"tx result code out of uint32 range: {result.code}")
        out += b"\x08" + encode_uvarint(result.code)
    if result.data:
        out += encode_field(b"\x12", result.data)
    if result.log:
        out += encode_field(b"\x1a", result.log.encode())
    if result.gas_wanted:
        out += b"\x28" + encode_int64(result.gas_wanted)
    if result.gas_used:
        out += b"\x30" + encode_int64(result.gas_used)
    for event in result.events:
        out += encode_field(b"\x3a", encode_event(event))
    if result.codespace:
        out += encode_field(b"\x42", result.codespace.encode())
    return out


def encode_finalize_block(result: FinalizeBlockResult) -> bytes:
    """A FinalizeBlockResult as the wire bytes of a ResponseFinalizeBlock, fields in number order."""
    parts = [encode_field(b"\x0a", encode_event(e)) for e in result.events]
    parts += [encode_field(b"\x12", encode_tx_result(r)) for r in result.tx_results]
    parts += [encode_field(b"\x1a", to_pb_validator_update(v).SerializeToString()) for v in result.validator_updates]
    if result.app_hash:
        parts.append(encode_field(b"\x2a", result.app_hash))
    return b"".join(parts)


# -- app -> protobuf (the rest) ----------------------------------------------------------------

def to_pb_info(result: InfoResult):
    """An InfoResult as a ResponseInfo."""
    return abci.ResponseInfo(
        data=result.data,
        version=result.version,
        app_version=result.app_version,
        last_block_height=result.last_block_height,
        last_block_app_hash=result.last_block_app_hash,
    )


def to_pb_init_chain(result: InitChainResult):
    """An InitChainResult as a ResponseInitChain (consensus params stay those of the genesis)."""
    return abci.ResponseInitChain(
        validators=[to_pb_validator_update(v) for v in result.validators],
        app_hash=result.app_hash,
    )


def to_pb_query(result: QueryResult):
    """A QueryResult as a ResponseQuery; a proof travels as one ProofOp of type PROOF_OP_TYPE."""
    response = abci.ResponseQuery(
        code=result.code,
        log=result.log,
        key=result.key,
        value=result.value,
        height=result.height,
        codespace=result.codespace,
    )
    if result.proof:
        response.proof_ops.ops.append(
            crypto_proof.ProofOp(type=PROOF_OP_TYPE, key=result.key, data=result.proof)
        )
    return response


def to_pb_snapshot(snapshot: Snapshot):
    """The app's Snapshot as an abci.Snapshot."""
    return abci.Snapshot(
        height=snapshot.height,
        format=snapshot.format,
        chunks=snapshot.chunks,
        hash=snapshot.hash,
        metadata=snapshot.metadata,
    )
