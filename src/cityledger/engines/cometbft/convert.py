"""Pure conversions between CometBFT's ABCI protobuf messages and the app's dataclasses (app/abc.py)."""

from __future__ import annotations

from cityledger.app.abc import (
    BlockRequest,
    Event,
    FinalizeBlockResult,
    InfoResult,
    InitChainRequest,
    InitChainResult,
    Misbehavior,
    QueryResult,
    Snapshot,
    TxResult,
    ValidatorUpdate,
)
from cityledger.engines.cometbft.proto import abci, crypto_keys, crypto_proof

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


def to_pb_event(event: Event):
    """The app's Event as an abci.Event."""
    return abci.Event(
        type=event.type,
        attributes=[
            abci.EventAttribute(key=key, value=value, index=INDEX_EVENT_ATTRIBUTES)
            for key, value in event.attributes
        ],
    )


def _tx_result_fields(result: TxResult) -> dict:
    """The fields ResponseCheckTx and ExecTxResult share (sender, nonce, priority have none in 0.38)."""
    return {"code": result.code, "data": result.data, "log": result.log, "gas_wanted": result.gas_wanted,
            "gas_used": result.gas_used, "events": [to_pb_event(e) for e in result.events],
            "codespace": result.codespace}


def to_pb_check_tx(result: TxResult):
    """A CheckTx TxResult as a ResponseCheckTx."""
    return abci.ResponseCheckTx(**_tx_result_fields(result))


def to_pb_exec_tx_result(result: TxResult):
    """A block's TxResult as an abci.ExecTxResult."""
    return abci.ExecTxResult(**_tx_result_fields(result))


def to_pb_finalize_block(result: FinalizeBlockResult):
    """A FinalizeBlockResult as a ResponseFinalizeBlock."""
    return abci.ResponseFinalizeBlock(
        events=[to_pb_event(e) for e in result.events],
        tx_results=[to_pb_exec_tx_result(r) for r in result.tx_results],
        validator_updates=[to_pb_validator_update(v) for v in result.validator_updates],
        app_hash=result.app_hash,
    )


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
