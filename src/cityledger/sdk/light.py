"""Light-client reads: state proven by CometBFT commits, trusting nothing but a validator set.

A full node can lie. A light client asks it (over CometBFT's JSON-RPC) for three things and checks
each against the one before, so that a lie is caught unless more than 2/3 of the voting power signed it:

1. The signed header of height H+1 (/commit): the header's hash, computed here as CometBFT's
   Header.Hash does (an RFC 6962 Merkle root of its protobuf-encoded fields), must be the block id
   that the commit signs; the commit's Ed25519 signatures, over CometBFT's canonical vote bytes
   (a length-delimited tendermint.types.CanonicalVote, as types.VoteSignBytes builds them), must
   carry more than 2/3 of the voting power of the header's validator set, and more than
   `trust_level` of the power of the set the client trusts (from genesis, or later verified).
2. The validator set of H+1 (/validators): its Merkle hash must be the header's validators_hash.
3. The value at height H (/abci_query with prove): its proof (one ProofOp carrying the app's
   canonical core.tree.Proof) must lead to header H+1's app_hash, which is the state after block H.

    client = LightClient.from_genesis("http://127.0.0.1:26657", "genesis.json")
    value = client.get_verified(key)          # bytes, or None for a proven absence
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path
from typing import Any, Mapping

import msgspec

from ..core.keys import verify_ed25519_zip215
from ..core.tree import Proof, verify_proof
from .errors import ProofError

PROOF_OP_TYPE = "cityledger:tree"  # engines/cometbft/convert.py writes proofs under this type
PRECOMMIT_TYPE = 2  # tendermint.types.SignedMsgType.SIGNED_MSG_TYPE_PRECOMMIT
BLOCK_ID_FLAG_COMMIT = 2  # tendermint.types.BlockIDFlag.BLOCK_ID_FLAG_COMMIT
ED25519_TYPES = ("tendermint/PubKeyEd25519", "ed25519")
DEFAULT_TRUST_LEVEL = Fraction(2, 3)
MAX_VALIDATORS = 10_000
VALIDATORS_PER_PAGE = 100
HEADER_WAIT_S = 10.0
POLL_S = 0.1


class LightClientError(ProofError):
    """What a node sent does not verify against the trusted validators: do not believe it."""


# -- data ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Validator:
    address: bytes  # first 20 bytes of SHA-256 of pub_key
    pub_key: bytes  # Ed25519, 32 bytes
    power: int


@dataclass(frozen=True)
class ValidatorSet:
    """Validators in CometBFT's order (power descending, then address ascending)."""

    validators: tuple[Validator, ...]

    @property
    def total_power(self) -> int:
        return sum(v.power for v in self.validators)

    def get(self, address: bytes) -> Validator | None:
        return next((v for v in self.validators if v.address == address), None)

    @classmethod
    def from_keys(cls, keys: list[tuple[bytes, int]]) -> "ValidatorSet":
        """A set from (Ed25519 pub key, power) pairs, sorted as CometBFT sorts it."""
        validators = [Validator(hashlib.sha256(pub).digest()[:20], pub, power) for pub, power in keys if power > 0]
        return cls(tuple(sorted(validators, key=lambda v: (-v.power, v.address))))

    @classmethod
    def from_genesis(cls, genesis: Mapping | str | Path) -> "ValidatorSet":
        """The validators of a CometBFT genesis.json (a path or its parsed document)."""
        document = genesis if isinstance(genesis, Mapping) else json.loads(Path(genesis).read_text())
        keys = [(_pub_key(v["pub_key"], "genesis.validators"), int(v["power"])) for v in document["validators"]]
        return cls.from_keys(keys)


@dataclass(frozen=True)
class BlockId:
    hash: bytes
    parts_total: int
    parts_hash: bytes


@dataclass(frozen=True)
class Header:
    version_block: int
    version_app: int
    chain_id: str
    height: int
    time: tuple[int, int]  # (seconds, nanos) since the Unix epoch
    last_block_id: BlockId
    last_commit_hash: bytes
    data_hash: bytes
    validators_hash: bytes
    next_validators_hash: bytes
    consensus_hash: bytes
    app_hash: bytes
    last_results_hash: bytes
    evidence_hash: bytes
    proposer_address: bytes


@dataclass(frozen=True)
class CommitSig:
    block_id_flag: int
    validator_address: bytes
    timestamp: tuple[int, int]
    signature: bytes


@dataclass(frozen=True)
class Commit:
    height: int
    round: int
    block_id: BlockId
    signatures: tuple[CommitSig, ...]


@dataclass(frozen=True)
class SignedHeader:
    header: Header
    commit: Commit


@dataclass(frozen=True)
class VerifiedValue:
    """A value (None: proven absent) at `height`, proven against the app hash of header height + 1."""

    key: bytes
    value: bytes | None
    height: int
    app_hash: bytes


# -- parsing CometBFT's JSON --------------------------------------------------------------------

def _hex(value: str | None) -> bytes:
    return bytes.fromhex(value or "")


def _b64(value: str | None) -> bytes:
    return base64.b64decode(value or "")


def _pub_key(document: Mapping, where: str) -> bytes:
    if document.get("type") not in ED25519_TYPES:
        raise LightClientError(f"{where}.pub_key: only Ed25519 keys are supported, got {document.get('type')!r}")
    key = _b64(document.get("value"))
    if len(key) != 32:
        raise LightClientError(f"{where}.pub_key: expected 32 bytes, got {len(key)}")
    return key


def parse_time(text: str) -> tuple[int, int]:
    """An RFC 3339 UTC time with up to nine fractional digits as (seconds, nanos) since the epoch."""
    if not text.endswith("Z"):
        raise ValueError(f"time: expected UTC ('Z'), got {text!r}")
    whole, _, fraction = text[:-1].partition(".")
    moment = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    if len(fraction) > 9 or (fraction and not fraction.isdigit()):
        raise ValueError(f"time: expected at most nine fractional digits, got {text!r}")
    seconds = int((moment - datetime(1970, 1, 1, tzinfo=timezone.utc)).total_seconds())
    return seconds, int(fraction.ljust(9, "0")) if fraction else 0


def parse_block_id(document: Mapping) -> BlockId:
    parts = document.get("parts") or {}
    return BlockId(_hex(document.get("hash")), int(parts.get("total", 0)), _hex(parts.get("hash")))


def parse_signed_header(document: Mapping) -> SignedHeader:
    """The result of /commit (or its signed_header) as a SignedHeader; raise LightClientError if malformed."""
    document = document.get("signed_header", document)
    try:
        h, c = document["header"], document["commit"]
        header = Header(
            int(h["version"]["block"]), int(h["version"].get("app", 0)), h["chain_id"], int(h["height"]),
            parse_time(h["time"]), parse_block_id(h["last_block_id"]), _hex(h["last_commit_hash"]),
            _hex(h["data_hash"]), _hex(h["validators_hash"]), _hex(h["next_validators_hash"]),
            _hex(h["consensus_hash"]), _hex(h["app_hash"]), _hex(h["last_results_hash"]),
            _hex(h["evidence_hash"]), _hex(h["proposer_address"]))
        signatures = tuple(
            CommitSig(int(s["block_id_flag"]), _hex(s.get("validator_address")),
                      parse_time(s["timestamp"]) if s.get("timestamp") else (0, 0), _b64(s.get("signature")))
            for s in c["signatures"])
        commit = Commit(int(c["height"]), int(c["round"]), parse_block_id(c["block_id"]), signatures)
    except (KeyError, TypeError, ValueError) as exc:
        raise LightClientError(f"signed_header: malformed ({type(exc).__name__}: {exc})") from None
    return SignedHeader(header, commit)


def parse_validators(entries: list[Mapping]) -> ValidatorSet:
    """The validators list of /validators, in the order given (their hash depends on it)."""
    validators = []
    for index, entry in enumerate(entries):
        try:
            pub = _pub_key(entry["pub_key"], f"validators[{index}]")
            validator = Validator(_hex(entry["address"]), pub, int(entry["voting_power"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise LightClientError(f"validators[{index}]: malformed ({type(exc).__name__}: {exc})") from None
        if validator.address != hashlib.sha256(pub).digest()[:20]:
            raise LightClientError(f"validators[{index}].address: {validator.address.hex()} is not its key's address")
        validators.append(validator)
    return ValidatorSet(tuple(validators))


# -- CometBFT's hashes and sign bytes -----------------------------------------------------------

def compute_merkle_root(items: list[bytes]) -> bytes:
    """crypto/merkle.HashFromByteSlices: RFC 6962, leaves SHA-256(0x00 || item), inner SHA-256(0x01 || l || r)."""
    if not items:
        return hashlib.sha256(b"").digest()
    if len(items) == 1:
        return hashlib.sha256(b"\x00" + items[0]).digest()
    split = 1 << ((len(items) - 1).bit_length() - 1)  # the largest power of two below len(items)
    left, right = compute_merkle_root(items[:split]), compute_merkle_root(items[split:])
    return hashlib.sha256(b"\x01" + left + right).digest()


def _proto():
    from google.protobuf import timestamp_pb2, wrappers_pb2

    from ..engines.cometbft import proto

    return proto, timestamp_pb2, wrappers_pb2


def compute_header_hash(header: Header) -> bytes:
    """types.Header.Hash: the Merkle root of the 14 fields, each protobuf-encoded (scalars in wrappers)."""
    proto, timestamp_pb2, wrappers = _proto()
    block_id = proto.types_types.BlockID(hash=header.last_block_id.hash)
    block_id.part_set_header.SetInParent()  # gogoproto non-nullable: always encoded, even when empty
    block_id.part_set_header.total = header.last_block_id.parts_total
    block_id.part_set_header.hash = header.last_block_id.parts_hash
    fields = [
        proto.version_types.Consensus(block=header.version_block, app=header.version_app).SerializeToString(),
        wrappers.StringValue(value=header.chain_id).SerializeToString(),
        wrappers.Int64Value(value=header.height).SerializeToString(),
        timestamp_pb2.Timestamp(seconds=header.time[0], nanos=header.time[1]).SerializeToString(),
        block_id.SerializeToString(),
    ] + [wrappers.BytesValue(value=value).SerializeToString() for value in (
        header.last_commit_hash, header.data_hash, header.validators_hash, header.next_validators_hash,
        header.consensus_hash, header.app_hash, header.last_results_hash, header.evidence_hash,
        header.proposer_address)]
    return compute_merkle_root(fields)


def compute_validators_hash(validators: ValidatorSet) -> bytes:
    """types.ValidatorSet.Hash: the Merkle root of each validator's SimpleValidator{pub_key, power} bytes."""
    proto, _, _ = _proto()
    items = [proto.types_validator.SimpleValidator(pub_key=proto.crypto_keys.PublicKey(ed25519=v.pub_key),
                                                   voting_power=v.power).SerializeToString()
             for v in validators.validators]
    return compute_merkle_root(items)


def compute_vote_sign_bytes(chain_id: str, commit: Commit, index: int) -> bytes:
    """types.Commit.VoteSignBytes: the uvarint-length-delimited CanonicalVote of precommit `index`."""
    from ..engines.cometbft.framing import encode_uvarint

    proto, timestamp_pb2, _ = _proto()
    sig = commit.signatures[index]
    vote = proto.types_canonical.CanonicalVote(type=PRECOMMIT_TYPE, height=commit.height, round=commit.round,
                                               chain_id=chain_id)
    if sig.block_id_flag == BLOCK_ID_FLAG_COMMIT:  # a nil vote signs no block id at all
        vote.block_id.hash = commit.block_id.hash
        vote.block_id.part_set_header.SetInParent()
        vote.block_id.part_set_header.total = commit.block_id.parts_total
        vote.block_id.part_set_header.hash = commit.block_id.parts_hash
    vote.timestamp.CopyFrom(timestamp_pb2.Timestamp(seconds=sig.timestamp[0], nanos=sig.timestamp[1]))
    vote.timestamp.SetInParent()  # non-nullable too
    body = vote.SerializeToString()
    return encode_uvarint(len(body)) + body


# -- verification -------------------------------------------------------------------------------

def verify_commit(chain_id: str, signed: SignedHeader, validators: ValidatorSet, trusted: ValidatorSet,
                  trust_level: Fraction = DEFAULT_TRUST_LEVEL) -> None:
    """Check a signed header against its validator set and the trusted set; raise LightClientError.

    Every signature for the block is checked (a single bad one fails the header, as CometBFT's
    VerifyCommitLightAllSignatures does); the verified ones must carry more than 2/3 of the power
    of `validators`, whose hash must be the header's validators_hash, and more than trust_level of
    the power of `trusted`.
    """
    header, commit = signed.header, signed.commit
    if header.chain_id != chain_id:
        raise LightClientError(f"header.chain_id: expected {chain_id!r}, got {header.chain_id!r}")
    if commit.height != header.height:
        raise LightClientError(f"commit.height: {commit.height} is not the header's height {header.height}")
    header_hash = compute_header_hash(header)
    if commit.block_id.hash != header_hash:
        raise LightClientError(f"header: hashes to {header_hash.hex().upper()}, but the commit signs block "
                               f"{commit.block_id.hash.hex().upper()}")
    if compute_validators_hash(validators) != header.validators_hash:
        raise LightClientError(f"validators: their hash is not the header's validators_hash "
                               f"{header.validators_hash.hex().upper()}")
    if len(commit.signatures) != len(validators.validators):
        raise LightClientError(f"commit.signatures: {len(commit.signatures)} for {len(validators.validators)} validators")
    signers = _verified_signers(chain_id, commit, validators)
    signed_power = sum(v.power for v in validators.validators if v.address in signers)
    if signed_power * 3 <= validators.total_power * 2:
        raise LightClientError(f"commit: signatures carry {signed_power} of {validators.total_power} voting power; "
                               "more than 2/3 is needed")
    trusted_power = sum(v.power for v in trusted.validators if signers.get(v.address) == v.pub_key)
    if trusted_power <= trust_level * trusted.total_power:
        raise LightClientError(f"commit: trusted validators signed with {trusted_power} of {trusted.total_power} "
                               f"voting power; more than {trust_level} is needed")


def _verified_signers(chain_id: str, commit: Commit, validators: ValidatorSet) -> dict[bytes, bytes]:
    """address -> pub key of every validator whose precommit for the block verifies; raise on a bad one."""
    signers: dict[bytes, bytes] = {}
    for index, sig in enumerate(commit.signatures):
        if sig.block_id_flag != BLOCK_ID_FLAG_COMMIT:
            continue
        validator = validators.validators[index]
        if sig.validator_address != validator.address:
            raise LightClientError(f"commit.signatures[{index}]: from {sig.validator_address.hex().upper()}, "
                                   f"expected validator {validator.address.hex().upper()}")
        # ZIP-215, the rule CometBFT verifies votes with.
        if not verify_ed25519_zip215(validator.pub_key, compute_vote_sign_bytes(chain_id, commit, index),
                                     sig.signature):
            raise LightClientError(f"commit.signatures[{index}]: wrong signature of validator "
                                   f"{validator.address.hex().upper()}")
        signers[validator.address] = validator.pub_key
    return signers


def parse_query_proof(response: Mapping, key: bytes) -> Proof:
    """The state proof in an abci_query response: one ProofOp of type PROOF_OP_TYPE for this key."""
    ops = (response.get("proofOps") or response.get("proof_ops") or {}).get("ops") or []
    if len(ops) != 1 or ops[0].get("type") != PROOF_OP_TYPE:
        raise LightClientError(f"proof: expected one ProofOp of type {PROOF_OP_TYPE!r}, got "
                               f"{[op.get('type') for op in ops]}")
    if _b64(ops[0].get("key")) != key:
        raise LightClientError("proof: the ProofOp is for another key")
    raw = _b64(ops[0].get("data"))
    try:
        if raw[:1] and raw[0] & 0xF0 == 0x80:  # the msgpack map {"siblings", "leaf"} some app versions send
            fields = msgspec.msgpack.decode(raw)
            leaf = fields.get("leaf")
            return Proof(tuple(fields["siblings"]), None if leaf is None else (leaf[0], leaf[1]))
        return Proof.from_bytes(raw)
    except (msgspec.DecodeError, KeyError, TypeError, AttributeError, ValueError) as exc:
        raise LightClientError(f"proof: malformed ({exc})") from None


def verify_query(key: bytes, response: Mapping, app_hash: bytes) -> bytes | None:
    """The value an abci_query response claims for key (None if absent), checked against app_hash."""
    if int(response.get("code", 0)) != 0:
        raise LightClientError(f"query: the node answered code {response.get('code')}: {response.get('log', '')}")
    if _b64(response.get("key")) != key:
        raise LightClientError("query: the response is for another key")
    value = None if response.get("log") == "absent" else _b64(response.get("value"))
    proof = parse_query_proof(response, key)
    if not verify_proof(app_hash, key, value, proof):
        claim = "its absence" if value is None else f"value {value.hex()[:64]}"
        raise LightClientError(f"proof: does not prove {claim} for key {key.hex()} under app hash "
                               f"{app_hash.hex().upper()}")
    return value


# -- the client ---------------------------------------------------------------------------------

class LightClient:
    """Reads proven state from any CometBFT node, trusting only a validator set."""

    def __init__(self, rpc_url: str, chain_id: str, trusted: ValidatorSet,
                 trust_level: Fraction = DEFAULT_TRUST_LEVEL, timeout_s: float = 10.0) -> None:
        import httpx

        if not Fraction(1, 3) <= trust_level < 1:
            raise ValueError(f"trust_level: expected 1/3 to below 1, got {trust_level}")
        if not trusted.validators:
            raise ValueError("trusted: expected at least one validator")
        self.chain_id = chain_id
        self.trusted = trusted
        self.trust_level = trust_level
        self._http = httpx.Client(base_url=rpc_url, timeout=timeout_s)

    @classmethod
    def from_genesis(cls, rpc_url: str, genesis: Mapping | str | Path, **options: Any) -> "LightClient":
        """A client that trusts the validators and chain id of a genesis.json."""
        document = genesis if isinstance(genesis, Mapping) else json.loads(Path(genesis).read_text())
        return cls(rpc_url, document["chain_id"], ValidatorSet.from_genesis(document), **options)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "LightClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _call(self, method: str, **params: Any) -> dict:
        reply = self._http.post("/", json={"jsonrpc": "2.0", "id": 0, "method": method, "params": params})
        reply.raise_for_status()
        answer = reply.json()
        if "error" in answer:
            error = answer["error"]
            raise LightClientError(f"{method}: {error.get('message', '')} {error.get('data', '')}".strip())
        return answer["result"]

    def fetch_validators(self, height: int) -> list[dict]:
        """The raw /validators entries at height, all pages."""
        entries: list[dict] = []
        page = 1
        while True:
            result = self._call("validators", height=str(height), page=str(page), per_page=str(VALIDATORS_PER_PAGE))
            entries.extend(result["validators"])
            if len(entries) >= int(result["total"]) or not result["validators"] or len(entries) > MAX_VALIDATORS:
                return entries
            page += 1

    def verify_header(self, height: int) -> SignedHeader:
        """The header at height, verified (its commit, its validator set, the trusted set)."""
        signed = parse_signed_header(self._call("commit", height=str(height)))
        if signed.header.height != height:
            raise LightClientError(f"header.height: asked for {height}, got {signed.header.height}")
        validators = parse_validators(self.fetch_validators(height))
        verify_commit(self.chain_id, signed, validators, self.trusted, self.trust_level)
        return signed

    def trust(self, signed: SignedHeader) -> None:
        """Trust the validator set of a header verified by verify_header (after validator changes)."""
        validators = parse_validators(self.fetch_validators(signed.header.height))
        if compute_validators_hash(validators) != signed.header.validators_hash:
            raise LightClientError("validators: their hash is not the verified header's validators_hash")
        self.trusted = validators

    def get_verified(self, key: bytes, height: int = 0, wait_s: float = HEADER_WAIT_S) -> VerifiedValue:
        """The value of a state key at height (0: the latest), proven against the verified header height + 1.

        The app hash of the state after block H is in header H+1, so a read of the latest state
        waits (up to wait_s) for the next block.
        """
        response = self._call("abci_query", path="/store", data=key.hex(), height=str(height), prove=True)["response"]
        state_height = int(response.get("height", 0))
        if state_height <= 0 or (height and state_height != height):
            raise LightClientError(f"query.height: asked for {height or 'the latest'}, got {state_height}")
        self._wait_for_height(state_height + 1, wait_s)
        signed = self.verify_header(state_height + 1)
        value = verify_query(key, response, signed.header.app_hash)
        return VerifiedValue(key, value, state_height, signed.header.app_hash)

    def _wait_for_height(self, height: int, wait_s: float) -> None:
        deadline = time.monotonic() + wait_s
        while int(self._call("status")["sync_info"]["latest_block_height"]) < height:
            if time.monotonic() > deadline:
                raise LightClientError(f"header {height}: not committed within {wait_s}s")
            time.sleep(POLL_S)
