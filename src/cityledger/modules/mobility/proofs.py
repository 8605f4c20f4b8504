"""Verifying driving-score proofs (ezkl, Halo2 over BN254 with KZG) with pinned genesis parameters.

The verifier reads the circuit's settings, verifying key and SRS shipped in circuit/ and refuses to
start if their SHA-256 differ from the pinned digests: they are genesis parameters. A proof is
checked against instances the chain builds itself — [commitment, score, distance] as field
elements — never against anything the prover says it proves (`pretty_public_inputs` is not
checked by ezkl). ezkl raises RuntimeError on a bad proof: that is a refusal, not a failure.

Verdicts are cached, keyed by the SHA-256 of (model, instances, proof), so check_tx's verification
serves FinalizeBlock's on the same validator: the verdict is a pure function of those bytes.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from importlib import resources

from ...core.hashing import sha256
from .messages import MODEL_DRIVING_SCORE_V1

FIELD_MODULUS = 21888242871839275222246405745257275088548364400416034343698204186575808495617  # BN254 r
MAX_VERDICT_CACHE = 4_096  # verdicts kept per validator (LRU), enough for every claim of a few blocks
CIRCUIT_FILES = ("settings.json", "vk.key", "kzg.srs")
# The genesis parameters of each model: SHA-256 of its settings, verifying key and SRS.
PINNED_DIGESTS: dict[str, dict[str, str]] = {
    MODEL_DRIVING_SCORE_V1: {
        "settings.json": "26c930a96673c62055034e60accafe5868c32b7d060d1ffdc306e36e05b6f837",
        "vk.key": "5421434d702bd67d179e71bc74271c44b3aede1ad89cdd0779efd357e66978c6",
        "kzg.srs": "c3d6bd92e67fcc7085d39ef5e780fa557e877fdb443cd322cfee91b797bc9df2",
    },
}


@dataclass(frozen=True)
class Verdict:
    """Whether a proof holds for the instances the chain built, and why not."""

    verified: bool
    reason: str


def is_field_element(raw: bytes) -> bool:
    """True if 32 little-endian bytes are a canonical BN254 scalar."""
    return len(raw) == 32 and int.from_bytes(raw, "little") < FIELD_MODULUS


def compute_instances(commitment: bytes, score_fixed: int, distance_fixed: int) -> list[str]:
    """The proof's public instances as ezkl writes them: little-endian field elements in hex."""
    return [commitment.hex(), score_fixed.to_bytes(32, "little").hex(), distance_fixed.to_bytes(32, "little").hex()]


def _verdict_key(model: str, instances: list[str], proof: bytes) -> bytes:
    """What a verdict is about: the model, the instances and the proof bytes."""
    return sha256(json.dumps([model, instances]).encode() + proof)


def circuit_dir() -> str:
    """Where the shipped circuit artefacts are."""
    return str(resources.files(__package__).joinpath("circuit"))


class ProofVerifier:
    """ezkl verification of one model's proofs against its pinned parameters, with a verdict cache."""

    def __init__(self, model: str = MODEL_DRIVING_SCORE_V1, directory: str | None = None,
                 pinned: dict[str, str] | None = None) -> None:
        self.model = model
        self.directory = directory or circuit_dir()
        expected = PINNED_DIGESTS.get(model, {}) if pinned is None else pinned
        for name in CIRCUIT_FILES:
            with open(os.path.join(self.directory, name), "rb") as handle:
                digest = sha256(handle.read()).hex()
            if expected.get(name) != digest:
                raise RuntimeError(f"mobility: {name} of {model} has SHA-256 {digest}, the genesis pins "
                                   f"{expected.get(name)}")
        self._scratch = tempfile.mkdtemp(prefix="cityledger-proofs-")
        atexit.register(shutil.rmtree, self._scratch, True)
        self._cache: OrderedDict[bytes, Verdict] = OrderedDict()
        self._lock = threading.Lock()

    def verify(self, model: str, instances: list[str], proof: bytes) -> Verdict:
        """The verdict on `proof` for `instances` (cached by their digest)."""
        if model != self.model:
            return Verdict(False, f"model: no verifier for {model!r}")
        key = _verdict_key(model, instances, proof)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        verdict = self.verify_uncached(instances, proof)
        self._store(key, verdict)
        return verdict

    def remember_verified(self, model: str, instances: list[str], proof: bytes) -> None:
        """Record that `proof` verified for `instances` under `model`, as this node's own verifier
        process found (a worker running `verify` on these very bytes): the verdict is about the
        bytes, so it serves whichever tx carries them. A model this verifier is not for is ignored."""
        if model == self.model:
            self._store(_verdict_key(model, instances, proof), Verdict(True, ""))

    def _store(self, key: bytes, verdict: Verdict) -> None:
        with self._lock:
            self._cache[key] = verdict
            self._cache.move_to_end(key)
            while len(self._cache) > MAX_VERDICT_CACHE:
                self._cache.popitem(last=False)

    def verify_uncached(self, instances: list[str], proof: bytes) -> Verdict:
        """ezkl.verify on a proof file holding only the chain's instances and the proof bytes."""
        import ezkl

        # One write of the whole document: json.dump to a file object writes it piecewise, 20x slower.
        body = json.dumps({"instances": [instances], "proof": list(proof)}).encode()
        descriptor, path = tempfile.mkstemp(suffix=".json", dir=self._scratch)
        try:
            os.write(descriptor, body)
        finally:
            os.close(descriptor)
        try:
            ok = ezkl.verify(path, os.path.join(self.directory, "settings.json"),
                             os.path.join(self.directory, "vk.key"), os.path.join(self.directory, "kzg.srs"))
        except (KeyboardInterrupt, SystemExit, MemoryError):
            raise
        except BaseException as exc:  # noqa: BLE001 - ezkl raises RuntimeError, or a Rust panic, on a bad proof
            return Verdict(False, f"proof: {type(exc).__name__}: {str(exc)[:160]}")
        finally:
            os.unlink(path)
        return Verdict(True, "") if ok else Verdict(False, "proof: does not verify")

    def cache_size(self) -> int:
        """Verdicts held."""
        return len(self._cache)
