"""Building the driving-score circuit's artefacts, and proving a trip's score on the owner's device.

`build_circuit(directory)` writes, from the score formula in score.py: model.onnx, settings.json
(hashed inputs, public outputs, fixed weights, scale 7, decomp_base 256, 4 legs, logrows 9),
model.compiled, a fresh KZG SRS (kzg.srs, unless one is given) and vk.key. The files shipped in
modules/mobility/circuit/ were made by it once: the SRS is a genesis parameter (whoever generated
it could forge proofs — docs/DRIVING_SCORE.md), and the chain pins their digests. The proving key
is not shipped (5.6 MB): `Prover` derives it at set-up from the compiled circuit and the SRS
(key generation is deterministic) and checks that its verifying key is the pinned one.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass

from ...core.hashing import sha256
from .score import MODEL_INPUTS, SALT_BITS, SALT_INPUTS, SCORE_SCALE_BITS, build_onnx

LOGROWS = 9  # 340 rows used of 512
DECOMP_BASE = 256
DECOMP_LEGS = 4  # range checks cover |value| < 256**4 / 2 at scale 7
SHIPPED = ("model.onnx", "settings.json", "model.compiled", "kzg.srs", "vk.key")


def _run_args(logrows: int = LOGROWS):
    import ezkl

    args = ezkl.PyRunArgs()
    args.input_visibility = "hashed"
    args.output_visibility = "public"
    args.param_visibility = "fixed"
    args.input_scale = SCORE_SCALE_BITS
    args.param_scale = SCORE_SCALE_BITS
    args.decomp_base = DECOMP_BASE
    args.decomp_legs = DECOMP_LEGS
    args.logrows = logrows
    args.lookup_range = (-128, 128)  # the graph has no lookups; the default range would force logrows 17
    return args


def build_circuit(directory: str, srs_path: str | None = None, penalties: list[int] | None = None) -> dict[str, str]:
    """Write the circuit's artefacts into `directory`; return each file's SHA-256 (hex)."""
    import ezkl

    os.makedirs(directory, exist_ok=True)
    path = (lambda name: os.path.join(directory, name))
    with open(path("model.onnx"), "wb") as handle:
        handle.write(build_onnx(penalties))
    if not ezkl.gen_settings(path("model.onnx"), path("settings.json"), py_run_args=_run_args()):
        raise RuntimeError("ezkl: gen_settings failed")
    if not ezkl.compile_circuit(path("model.onnx"), path("model.compiled"), path("settings.json")):
        raise RuntimeError("ezkl: compile_circuit failed")
    if srs_path is None:
        ezkl.gen_srs(path("kzg.srs"), LOGROWS)
    elif os.path.abspath(srs_path) != os.path.abspath(path("kzg.srs")):
        shutil.copyfile(srs_path, path("kzg.srs"))
    scratch = tempfile.mkdtemp(prefix="cityledger-setup-")
    try:
        if not ezkl.setup(path("model.compiled"), path("vk.key"), os.path.join(scratch, "pk.key"), path("kzg.srs")):
            raise RuntimeError("ezkl: setup failed")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return digests(directory)


def digests(directory: str) -> dict[str, str]:
    """SHA-256 (hex) of each artefact present in `directory`."""
    out = {}
    for name in SHIPPED:
        if os.path.exists(os.path.join(directory, name)):
            with open(os.path.join(directory, name), "rb") as handle:
                out[name] = sha256(handle.read()).hex()
    return out


def new_salt() -> list[int]:
    """A trip's random salt inputs."""
    return [secrets.randbelow(1 << SALT_BITS) for _ in range(SALT_INPUTS)]


def quantise(inputs: list[int]) -> list[str]:
    """The model inputs (features then salt) as field elements at the circuit's input scale."""
    import ezkl

    if len(inputs) != MODEL_INPUTS or not all(type(value) is int for value in inputs):
        raise ValueError(f"features: expected {MODEL_INPUTS} integers (features then salt), got {inputs!r}")
    if not all(0 <= value < 1 << SALT_BITS for value in inputs[-SALT_INPUTS:]):
        raise ValueError(f"features: expected salt values 0 to {(1 << SALT_BITS) - 1}, got {inputs[-SALT_INPUTS:]}")
    return [ezkl.float_to_felt(float(value), SCORE_SCALE_BITS) for value in inputs]


def compute_commitment(inputs: list[int]) -> bytes:
    """The Poseidon hash of the quantised inputs: 32 bytes, little-endian (the vehicle's commitment)."""
    import ezkl

    return bytes.fromhex(ezkl.poseidon_hash(quantise(inputs))[0])


@dataclass(frozen=True)
class TripProof:
    """A proof that the model scores the committed features `score_fixed` over `distance_fixed`."""

    commitment: bytes
    score_fixed: int
    distance_fixed: int
    proof: bytes


class Prover:
    """The owner's device: proves trip scores with the circuit in `directory` and a proving key it
    derives once into `work_dir` (checked against the circuit's verifying key)."""

    def __init__(self, directory: str, work_dir: str) -> None:
        import ezkl

        self.directory, self.work_dir = directory, work_dir
        os.makedirs(work_dir, exist_ok=True)
        self.pk = os.path.join(work_dir, "pk.key")
        if not os.path.exists(self.pk):
            vk = os.path.join(work_dir, "vk.key")
            ezkl.setup(os.path.join(directory, "model.compiled"), vk, self.pk, os.path.join(directory, "kzg.srs"))
            if digests(work_dir).get("vk.key") != digests(directory).get("vk.key"):
                os.unlink(self.pk)
                raise RuntimeError("prover: the derived verifying key is not the circuit's pinned vk.key")

    def prove(self, features: list[int]) -> TripProof:
        """Prove the score of integer inputs (features then salt); the outputs come from the proof's
        instances only."""
        import ezkl

        quantise(features)  # refuses anything but integers, naming the field
        scratch = tempfile.mkdtemp(dir=self.work_dir)
        try:
            data, witness, proof = (os.path.join(scratch, name) for name in ("in.json", "w.json", "p.json"))
            with open(data, "w") as handle:
                json.dump({"input_data": [[float(value) for value in features]]}, handle)
            ezkl.gen_witness(data, os.path.join(self.directory, "model.compiled"), witness)
            ezkl.prove(witness, os.path.join(self.directory, "model.compiled"), self.pk, proof,
                       os.path.join(self.directory, "kzg.srs"))
            with open(proof) as handle:
                snark = json.load(handle)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        hashed, score, distance = (bytes.fromhex(value) for value in snark["instances"][0])
        return TripProof(hashed, int.from_bytes(score, "little"), int.from_bytes(distance, "little"),
                         bytes(snark["proof"]))
