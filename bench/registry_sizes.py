"""What a revocation registry's size costs the issuer and the holder, with the anoncreds library.

Run: PYTHONPATH=src python bench/registry_sizes.py [--sizes 1024,32768,131072] [--revocations 10] [--json]

For each size N (credentials per registry, issuance by default, so every index is in the
accumulator) it measures, with one Resident ID credential at a random index:
  create_s          the issuer creates the registry (keys + tails file)
  tails_bytes       the tails file a holder downloads once (by hash), and hash_ms to check it
  status_create_ms  the issuer's initial status list
  witness_ms        the holder's first revocation state (witness over all N indexes)
  present_ms        a presentation (one revealed attribute, one predicate, non-revocation),
                    the revocation state already held
  verify_ms         the verifier's check of it
  revoke_ms         the issuer's status-list update revoking `--revocations` other credentials
  update_ms         the holder's witness update from the old list to the new (the delta only)
  present_after_ms  a presentation against the new list, with the updated state
The last line of output is one JSON object: {"sizes": [{...}, ...], "python", "anoncreds"}.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anoncreds

ISSUER = "did:city:bench"
SCHEMA_ID = f"{ISSUER}/anoncreds/v0/SCHEMA/resident-id/1.0"
CRED_DEF_ID = f"{ISSUER}/anoncreds/v0/CLAIM_DEF/resident-id/1"
ATTRIBUTES = ["birth_date", "district", "id_number", "name", "resident_since"]
VALUES = {"birth_date": "19900101", "district": "Nordstadt", "id_number": "CID-0000001",
          "name": "Alma Fischer", "resident_since": "20180301"}
REPEATS = 3  # presentation and verification are timed this many times; the median is reported


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def make_cred_def() -> tuple[Any, Any, Any, Any]:
    """A revocable Resident ID schema and credential definition (done once for every size)."""
    schema = anoncreds.Schema.create("resident-id", "1.0", ISSUER, ATTRIBUTES)
    cred_def, private, proof = anoncreds.CredentialDefinition.create(
        SCHEMA_ID, schema, ISSUER, "1", "CL", support_revocation=True)
    return schema, cred_def, private, proof


def measure(size: int, revocations: int, defs: tuple[Any, Any, Any, Any], scratch: Path) -> dict[str, Any]:
    """Every figure for one registry size."""
    schema, cred_def, cred_def_private, key_proof = defs
    out: dict[str, Any] = {"size": size}
    rev_reg_id = f"{ISSUER}/anoncreds/v0/REV_REG_DEF/{size}"
    folder = scratch / str(size)
    folder.mkdir()
    started = time.perf_counter()
    rev_reg_def, rev_private = anoncreds.RevocationRegistryDefinition.create(
        CRED_DEF_ID, cred_def, ISSUER, str(size), "CL_ACCUM", size, tails_dir_path=str(folder))
    out["create_s"] = round(time.perf_counter() - started, 2)
    tails_path = rev_reg_def.tails_location
    data = Path(tails_path).read_bytes()
    out["tails_bytes"] = len(data)
    started = time.perf_counter()
    hashlib.sha256(data).digest()
    out["hash_ms"] = _ms(started)
    started = time.perf_counter()
    status = anoncreds.RevocationStatusList.create(cred_def, rev_reg_id, rev_reg_def, rev_private, ISSUER, True, 1)
    out["status_create_ms"] = _ms(started)

    # One holder, one credential at a random index (as the issuer now assigns them).
    index = secrets.randbelow(size - 1) + 1
    link_secret = anoncreds.create_link_secret()
    offer = anoncreds.CredentialOffer.create(SCHEMA_ID, CRED_DEF_ID, key_proof)
    request, metadata = anoncreds.CredentialRequest.create(secrets.token_hex(16), None, cred_def, link_secret,
                                                           "default", offer)
    config = anoncreds.CredentialRevocationConfig(rev_reg_def, rev_private, status, index)
    credential = anoncreds.Credential.create(cred_def, cred_def_private, offer, request, VALUES, None, config)
    credential = credential.process(metadata, link_secret, cred_def, rev_reg_def)
    started = time.perf_counter()
    rev_state = anoncreds.CredentialRevocationState.create(rev_reg_def, status, index, tails_path)
    out["witness_ms"] = _ms(started)
    out["present_ms"], out["verify_ms"] = _present_verify(schema, cred_def, rev_reg_def, status, credential,
                                                          rev_state, link_secret, rev_reg_id, 1)

    # Revocations of other residents: the issuer's update, then the holder's witness update.
    others = sorted({secrets.randbelow(size - 1) + 1 for _ in range(revocations)} - {index})
    started = time.perf_counter()
    updated = status.update(cred_def, rev_reg_def, rev_private, None, others, 2)
    out["revoke_ms"] = _ms(started)
    out["revoked"] = len(others)
    started = time.perf_counter()
    rev_state.update(rev_reg_def, updated, index, tails_path, status)
    out["update_ms"] = _ms(started)
    out["present_after_ms"], _ = _present_verify(schema, cred_def, rev_reg_def, updated, credential, rev_state,
                                                 link_secret, rev_reg_id, 2)
    return out


def _present_verify(schema, cred_def, rev_reg_def, status, credential, rev_state, link_secret,
                    rev_reg_id: str, timestamp: int) -> tuple[float, float]:
    """Median presentation and verification times against one status list."""
    present_times, verify_times = [], []
    for _ in range(REPEATS):
        request = {"name": "bench", "version": "1.0", "nonce": anoncreds.generate_nonce(),
                   "requested_attributes": {"district": {"name": "district"}},
                   "requested_predicates": {"adult": {"name": "birth_date", "p_type": "<=", "p_value": 20070615}},
                   "non_revoked": {"from": timestamp, "to": timestamp}}
        present = anoncreds.PresentCredentials()
        present.add_attributes(credential, "district", reveal=True, timestamp=timestamp, rev_state=rev_state)
        present.add_predicates(credential, "adult", timestamp=timestamp, rev_state=rev_state)
        started = time.perf_counter()
        presentation = anoncreds.Presentation.create(request, present, {}, link_secret, {SCHEMA_ID: schema},
                                                     {CRED_DEF_ID: cred_def})
        present_times.append(_ms(started))
        started = time.perf_counter()
        ok = presentation.verify(request, {SCHEMA_ID: schema}, {CRED_DEF_ID: cred_def},
                                 {rev_reg_id: rev_reg_def}, [status])
        verify_times.append(_ms(started))
        if not ok:
            raise RuntimeError(f"registry of {rev_reg_def.to_dict()['value']['maxCredNum']}: did not verify")
    return statistics.median(present_times), statistics.median(verify_times)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, measure each size, print a table (unless --json) and the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1024,32768", help="comma-separated registry sizes")
    parser.add_argument("--revocations", type=int, default=10, help="other credentials revoked before the update")
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    defs = make_cred_def()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for size in sizes:
            rows.append(measure(size, max(1, args.revocations), defs, Path(scratch)))
            if not args.json:
                print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({"sizes": rows, "python": platform.python_version(),
                      "anoncreds": getattr(anoncreds, "__version__", "0.2.3")}, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
