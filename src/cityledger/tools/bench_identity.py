"""`cityledger bench identity`: AnonCreds on the ledger: issue, present, verify (ledger-resolved), raw verify.

Run: cityledger bench identity [--iterations 15] [--registry-size 131072] [--json]
(or python bench/identity_bench.py). One Resident ID credential per iteration, from a registry of
`--registry-size` (default: the city's, CITY_REGISTRY_SIZE; creating it takes minutes and is
reported as setup_s); the presentation reveals one attribute, proves one predicate and
non-revocation: present_ms is a wallet's first (it computes its witness over the whole registry),
present_again_ms a later one (the witness held, updated from the status list's delta).
verify_ms resolves schema, credential definition, registry, status list and the issuer's
accreditation from the ledger at the request's height; raw_verify_ms is the anoncreds library's
verify of the same presentation with objects already in memory. The last line of output is one
JSON object with every figure (medians in milliseconds).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from ..app import abc
from ..app.application import CityApp
from ..core.encoding import encode
from ..core.keys import PrivateKey
from ..core.storage import Store
from ..core.types import address_to_str
from ..modules.governance import SubmitProposal
from ..modules.identity import AccreditIssuer
from ..modules.identity.presentations import resolve_identifiers
from ..node.modules import default_modules
from ..offchain.identity import (
    RESIDENT_ID,
    RESIDENT_ID_TYPE,
    IssuerService,
    LocalLedger,
    TailsFetcher,
    TailsStore,
    Verifier,
    Wallet,
    compute_years_before,
    raw_verify,
)
from ..offchain.identity.types import CITY_REGISTRY_SIZE

CHAIN_ID = "bench-identity"
TODAY = 20250615
RESIDENT = {"name": "Alma Fischer", "birth_date": 19900101, "district": "Nordstadt", "resident_since": 20180301}


def make_city(home: Path, registry_size: int = CITY_REGISTRY_SIZE) -> tuple[LocalLedger, IssuerService]:
    """A one-member consortium chain with an accredited ID office that has published Resident IDs."""
    member = PrivateKey(1, b"\x01" * 32)
    app = CityApp(Store(home / "ledger.sqlite"), default_modules(), CHAIN_ID)
    genesis = {"governance": {"members": [{"address": address_to_str(member.address())}], "threshold": 1}}
    app.init_chain(abc.InitChainRequest(CHAIN_ID, 1, 1, json.dumps(genesis).encode()))
    ledger = LocalLedger(app)
    tails = TailsStore(home / "tails", "https://id.city.example/tails")
    office = IssuerService(ledger, [PrivateKey(1, b"\x02" * 32)], tails)
    office.register()
    ledger.send([member], [SubmitProposal(encode(AccreditIssuer(office.did, RESIDENT_ID)))]).raise_for_error()
    office.publish(dataclasses.replace(RESIDENT_ID_TYPE, max_cred_num=registry_size))
    return ledger, office


def timed(fn, *args) -> tuple[Any, float]:
    started = time.perf_counter()
    result = fn(*args)
    return result, (time.perf_counter() - started) * 1000


def run(iterations: int, registry_size: int = CITY_REGISTRY_SIZE) -> dict[str, Any]:
    """Measure every figure; return them with medians in milliseconds."""
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch)
        started = time.perf_counter()
        ledger, office = make_city(home, registry_size)
        setup_s = time.perf_counter() - started
        fetcher = TailsFetcher(home / "cache", transport=lambda url: office.serve_tails(url.rsplit("/", 1)[1]))
        verifier = Verifier(ledger)
        issue, present, present_again, verify, raw = [], [], [], [], []
        for index in range(iterations):
            wallet = Wallet.in_memory(fetcher)
            values = dict(RESIDENT, id_number=f"CID-{index:07d}")
            _, ms = timed(_issue, office, wallet, ledger, values)
            issue.append(ms)
            request = verifier.request("bench", RESIDENT_ID, reveal=["district"],
                                       predicates=[("birth_date", "<=", compute_years_before(TODAY, 18))])
            presentation, ms = timed(wallet.present, request, ledger)
            present.append(ms)
            # Again, the witness now held: what each later presentation of this wallet costs.
            again_request = verifier.request("bench", RESIDENT_ID, reveal=["district"],
                                             predicates=[("birth_date", "<=", compute_years_before(TODAY, 18))])
            _, ms = timed(wallet.present, again_request, ledger)
            present_again.append(ms)
            # Objects a raw verifier would already hold, resolved outside the timer.
            held = resolve_identifiers(ledger.state_at(request["non_revoked"]["to"]),
                                       json.loads(presentation)["identifiers"])
            args = (request, presentation, held.schemas, held.cred_defs, held.rev_reg_defs, held.status_lists)
            for first in ((raw, verify) if index % 2 else (verify, raw)):
                if first is raw:
                    ok, ms = timed(raw_verify, *args)
                else:
                    verdict, ms = timed(verifier.verify, request, presentation)
                    ok = verdict["verified"]
                if not ok:
                    raise RuntimeError("benchmark presentation did not verify")
                first.append(ms)
    result = {
        "issue_ms": statistics.median(issue), "present_ms": statistics.median(present),
        "present_again_ms": statistics.median(present_again),
        "verify_ms": statistics.median(verify), "raw_verify_ms": statistics.median(raw),
        "iterations": iterations, "setup_s": setup_s, "registry_size": registry_size,
        "python": platform.python_version(),
    }
    result["verify_overhead_ratio"] = result["verify_ms"] / result["raw_verify_ms"]
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}


def _issue(office: IssuerService, wallet: Wallet, ledger: LocalLedger, values: dict) -> str:
    offer = office.offer(RESIDENT_ID)
    request = wallet.request_credential(offer, ledger)
    return wallet.store_credential(office.issue(request, values, values["id_number"]), ledger)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run, print a summary (unless --json) and the JSON line."""
    parser = argparse.ArgumentParser(prog="cityledger bench identity", description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=15)
    parser.add_argument("--registry-size", type=int, default=CITY_REGISTRY_SIZE,
                        help="credentials per revocation registry (the city's by default)")
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    args = parser.parse_args(argv)
    result = run(max(1, args.iterations), max(4, args.registry_size))
    if not args.json:
        print(f"identity: issue {result['issue_ms']:.1f} ms, present {result['present_ms']:.1f} ms, "
              f"verify {result['verify_ms']:.1f} ms (raw anoncreds {result['raw_verify_ms']:.1f} ms, "
              f"x{result['verify_overhead_ratio']:.2f}), {result['iterations']} iterations, "
              f"registry of {result['registry_size']}")
    print(json.dumps(result, sort_keys=True))
    return 0
