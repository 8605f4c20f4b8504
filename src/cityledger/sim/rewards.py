"""Simulated traffic against a node: a sponsor's programme, the fleet's owners enrolled with the
transport office's tickets, each vehicle committing to its trips' features at trip end, owners proving
and claiming the trips that reach the programme's threshold through the SDK; then rewards per driver
class, the budget check and a scan of everything the ledger serves for the simulated values.

With the node's host (`NodeHost`, sim/vaults.py) the cars are connected: registered devices publishing
their trips into their owners' vaults, the owners scoring the trips they read back, and each owner
enrolling at the office's EnrollmentDesk with a presentation of its car's registration credential.
Without it, the office signs each ticket directly (issue_enrollment), as if it had checked each
vehicle's registration.
"""

from __future__ import annotations

import bisect
import os
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import httpx

from ..core.keys import PrivateKey
from ..modules.identity import compute_did
from ..modules.mobility import circuit_dir
from ..modules.mobility.messages import MAX_PERIOD_BLOCKS
from ..offchain.identity import VEHICLE_REGISTRATION
from ..offchain.mobility.circuit import Prover
from ..offchain.mobility.features import compute_features
from ..offchain.mobility.rewards import (EnrollmentDesk, EnrollmentRefused, SignedTrip, build_claim, close_trip,
                                         issue_enrollment)
from ..offchain.mobility.score import DISTANCE_INDEX, SCORE_ONE, compute_score_fixed
from ..sdk import Client, IdentityClient, TxRejected
from ..sdk.mobility import claim, create_programme, enroll
from .citymap import CityMap, feature_samples
from .drivers import CLASS_NAMES
from .traffic import TrafficSim, Trip
from .vaults import ConnectedVehicle, NodeHost, connect_fleet, publish_trip, read_samples

WAIT_S = 60.0  # per committed tx the run waits for
PROGRAMME_BLOCKS = 1_000_000  # the programme's life from its creation height
# A packed value needs this many bytes between its first and last non-zero byte to be a form: a
# round value (a longitude of exactly 10.0 as float64 is 00 00 00 00 00 00 24 40) is two bytes of
# information and sits by chance after any run of zeros (an ezkl proof's zero element, padding).
# The sample is still caught by its text forms and its packed (lat, lon) pair.
MIN_SIGNIFICANT_BYTES = 4


@dataclass(frozen=True)
class Terms:
    """The sponsor's programme terms (micro-credits)."""

    budget: int = 2_000_000
    min_score: int = 60
    reward_per_trip: int = 5_000
    reward_per_km: int = 2_000
    cap_per_trip: int = 20_000
    cap_per_enrollee: int = 200_000

    def trip_reward(self, distance_km: int) -> int:
        """A qualifying trip's reward before the enrollee's cap and the budget (as the programme computes it)."""
        return min(self.reward_per_trip + self.reward_per_km * distance_km, self.cap_per_trip)


@dataclass
class Owner:
    """A vehicle's owner for the programme's period: a fresh pseudonym whose account enrolls and claims."""

    driver: str
    pseudonym: PrivateKey
    trips: list[SignedTrip] = field(default_factory=list)
    scores: list[int] = field(default_factory=list)  # whole points, as the owner sees them locally
    spans: list[tuple[int, int, int]] = field(default_factory=list)  # each trip's first and last second, samples
    claimed: int = 0  # claims committed and paid
    reward: int = 0  # what they paid (the claim_paid events' rewards)


def _commit(client: Client, tx: bytes, what: str):
    result = client.submit(tx, wait=True, timeout_s=WAIT_S)
    if result.result is None or not result.result.ok:
        raise RuntimeError(f"{what}: not committed ({result.status}: {result.result and result.result.log})")
    return result


def start_programme(client: Client, sponsor: PrivateKey, office: PrivateKey, terms: Terms) -> tuple[str, int, int]:
    """(chain id, programme id, period): the sponsor's programme with the office as its ticket issuer."""
    status = client.status()
    tx = create_programme(status.chain_id, sponsor, client.get_nonce(sponsor.address()), budget=terms.budget,
                          min_score=terms.min_score, reward_per_trip=terms.reward_per_trip,
                          reward_per_km=terms.reward_per_km, cap_per_trip=terms.cap_per_trip,
                          cap_per_enrollee=terms.cap_per_enrollee, period_blocks=MAX_PERIOD_BLOCKS,
                          expiry_height=status.height + PROGRAMME_BLOCKS, issuer=compute_did(office.signer(), b""))
    result = _commit(client, tx, "create_programme")
    event = next(e for e in result.result.events if e.type == "mobility.programme_created")
    programme_id = int(next(a.value for a in event.attributes if a.key == "programme_id"))
    return status.chain_id, programme_id, result.height // MAX_PERIOD_BLOCKS


def enroll_fleet(client: IdentityClient, chain_id: str, programme_id: int, period: int, office: PrivateKey,
                 office_secret: bytes, classes: list[str], fleet: list[ConnectedVehicle] | None = None) -> list[Owner]:
    """One owner per vehicle, each enrolled with a ticket naming a vehicle of its own: with a connected
    `fleet`, from the office's EnrollmentDesk for a presentation of the car's registration credential in
    its owner's wallet; without, signed by the office directly (the stand-in)."""
    owners = [Owner(driver, PrivateKey.generate()) for driver in classes]
    run_tag = os.urandom(8).hex()  # vehicles of another run on the same node are other vehicles
    desk = None if not fleet else _desk(client, chain_id, office, office_secret)
    sent = []
    for index, owner in enumerate(owners):
        if desk is None:
            ticket = issue_enrollment(office, office_secret, chain_id, programme_id, period, f"sim-{run_tag}-{index}",
                                      owner.pseudonym.public_key, owner.pseudonym.address())
        else:
            ticket = _desk_ticket(client, desk, fleet[index], programme_id, period, owner.pseudonym)
        sent.append(client.submit(enroll(chain_id, owner.pseudonym, 0, ticket)).tx_id)
    for tx_id in sent:
        done = client.wait(tx_id, timeout_s=WAIT_S)
        if done.result is None or not done.result.ok:
            raise RuntimeError(f"enroll: tx {tx_id} not committed ({done.status}: {done.result and done.result.log})")
    return owners


def _desk(client: IdentityClient, chain_id: str, office: PrivateKey, secret: bytes) -> EnrollmentDesk:
    """The office's desk, checking presentations against its own vehicle-registration definition."""
    did = compute_did(office.signer(), b"")
    publication = client.get_publication(did, VEHICLE_REGISTRATION)
    if publication["state"] != "published":
        raise RuntimeError(f"--office: {did} has not published {VEHICLE_REGISTRATION} ({publication['state']}): "
                           f"expected the office that issued the cars' registrations")
    return EnrollmentDesk(office, secret, chain_id, publication["cred_def_id"])


def _desk_ticket(client: IdentityClient, desk: EnrollmentDesk, vehicle: ConnectedVehicle, programme_id: int,
                 period: int, pseudonym: PrivateKey):
    """The owner answers the desk's request with its car's registration and gets the enrollment ticket."""
    height = client.status().height
    request = desk.request(programme_id, period, pseudonym.public_key, pseudonym.address(), height)
    presentation = client.present(vehicle.wallet, request)
    current = client.status().height
    try:
        return desk.issue(client.ledger.state_at(current), current, programme_id, period, pseudonym.public_key,
                          pseudonym.address(), height, presentation)
    except EnrollmentRefused as exc:
        raise RuntimeError(f"enrollment desk: {vehicle.did}: {exc}") from None


def trip_closer(owners: list[Owner], chain_id: str, programme_id: int) -> Callable[[Trip], None]:
    """The vehicles' on-board step at each arrival: commit to the trip's features with the pseudonym."""
    def on_trip(trip: Trip) -> None:
        owner = owners[trip.vehicle]
        owner.trips.append(close_trip(owner.pseudonym, chain_id, programme_id, trip.features.model_inputs()))
        owner.scores.append(trip.score_fixed // SCORE_ONE)
        owner.spans.append((trip.telemetry[0].t_s, trip.telemetry[-1].t_s, len(trip.telemetry)))
    return on_trip


def read_back(url: str, owners: list[Owner], fleet: list[ConnectedVehicle], city: CityMap) -> dict:
    """Each owner reads its trips' samples from its vault and scores them itself: the scores it sees
    (and claims by) are these; they must equal what each vehicle committed to."""
    started, read, trips, matching = time.perf_counter(), 0, 0, 0
    with IdentityClient(url, timeout_s=WAIT_S) as client:
        chain_id = client.status().chain_id
        for owner, vehicle in zip(owners, fleet):
            if not owner.spans:
                continue
            samples = read_samples(client, chain_id, vehicle, owner.spans[0][0], owner.spans[-1][1],
                                   sum(count for _, _, count in owner.spans))
            times = [sample.t_s for sample in samples]
            read += len(samples)
            for index, (first_s, last_s, count) in enumerate(owner.spans):
                trip = samples[bisect.bisect_left(times, first_s):bisect.bisect_right(times, last_s)]
                inputs = compute_features(feature_samples(trip, city)).model_inputs() if trip else []
                trips += len(trip) == count
                matching += len(trip) == count and inputs == owner.trips[index].features[:len(inputs)]
                owner.scores[index] = compute_score_fixed(inputs)[0] // SCORE_ONE if trip else 0
    return {"vehicles": len(fleet), "windows_published": sum(vehicle.windows for vehicle in fleet),
            "samples_published": sum(count for owner in owners for _, _, count in owner.spans),
            "samples_read_back": read, "trips_read_back": trips, "trips_matching_commitment": matching,
            "read_back_s": round(time.perf_counter() - started, 2)}


def claim_trips(client: Client, chain_id: str, programme_id: int, owners: list[Owner], terms: Terms, work: Path,
                on_claim: Callable[[], None] | None = None) -> dict[str, int]:
    """Each owner proves and claims its trips reaching the programme's threshold while the programme has
    budget left and the owner's cap for the period is not reached; returns counts of claims sent, refused
    at admission and refused in their block."""
    prover = Prover(circuit_dir(), str(work / "prover"))
    sent, refused = [], 0
    for owner in owners:
        nonce, due = 1, 0
        for trip, score in zip(owner.trips, owner.scores):
            if score < terms.min_score:
                continue  # the owner sees the score first: a trip below the threshold is not worth a proof
            if due >= terms.cap_per_enrollee:
                break  # the owner's claims already fill its cap for the period: another would be refused
            if client.query("mobility", "programme", id=str(programme_id))["remaining"] == 0:
                break  # the budget is spent: no owner proves any more
            due += terms.trip_reward(trip.features[DISTANCE_INDEX])
            tx = claim(chain_id, owner.pseudonym, nonce, build_claim(prover, trip))
            try:
                sent.append((owner, client.submit(tx).tx_id))
                nonce += 1
            except TxRejected:  # e.g. the budget ran out meanwhile or the enrollee's cap is reached
                refused += 1
            if on_claim is not None:
                on_claim()
    counts = {"claims_sent": len(sent) + refused, "claims_refused": refused}
    for owner, tx_id in sent:
        done = client.wait(tx_id, timeout_s=WAIT_S)
        if done.result is None or not done.result.ok:
            counts["claims_refused"] += 1
            continue
        paid = [e for e in done.result.events if e.type == "mobility.claim_paid"]
        owner.claimed += 1
        owner.reward += sum(int(a.value) for e in paid for a in e.attributes if a.key == "reward")
    return counts


def claimable(owners: list[Owner], min_score: int) -> int:
    """How many trips their owners will prove and claim."""
    return sum(1 for owner in owners for score in owner.scores if score >= min_score)


def rewards_summary(client: Client, programme_id: int, owners: list[Owner]) -> dict:
    """Rewards per class (from the paid claims' events) and the programme's budget check."""
    per_class = {name: {"enrollees": 0, "trips": 0, "claimed_trips": 0, "reward": 0} for name in CLASS_NAMES}
    # the ledger is feeless and a pseudonymous account starts empty: its balance is exactly its rewards
    balances_match = all(client.get_account(owner.pseudonym.address()).balance == owner.reward for owner in owners)
    for owner in owners:
        row = per_class[owner.driver]
        row["enrollees"] += 1
        row["trips"] += len(owner.trips)
        row["reward"] += owner.reward
        row["claimed_trips"] += owner.claimed
    for row in per_class.values():
        row["reward_per_enrollee"] = row["reward"] // row["enrollees"] if row["enrollees"] else 0
    programme = client.query("mobility", "programme", id=str(programme_id))
    paid = sum(row["reward"] for row in per_class.values())
    return {"programme_id": programme_id, "budget": programme["budget"], "remaining": programme["remaining"],
            "paid": paid, "claims_paid": programme["claims"],
            "budget_held": paid == programme["budget"] - programme["remaining"] and paid <= programme["budget"],
            "balances_match": balances_match,
            "classes": per_class}


def sample_forms(trips: list[Trip]) -> set[bytes]:
    """The ways a simulated sample could sit in the ledger in clear (each at least 8 bytes): positions
    as decimal 1e-7 degrees, degrees text and float64, integer pairs; timestamps as decimal and int64;
    speeds as pairs of consecutive seconds' text; each sample packed as the device would. A packed form
    with fewer than MIN_SIGNIFICANT_BYTES between its zero bytes is left out (it matches by chance)."""
    forms: set[bytes] = set()
    for trip in trips:
        samples = trip.telemetry
        for index, sample in enumerate(samples):
            lat, lon, speed = sample.values
            for value in (lat, lon):
                forms |= {str(value).encode(), f"{value / 1e7:.7f}".encode(), struct.pack(">d", value / 1e7),
                          struct.pack("<d", value / 1e7)}
            forms |= {struct.pack(fmt, lat, lon) for fmt in (">2i", "<2i", ">2q", "<2q")}
            forms |= {str(sample.t_s).encode(), struct.pack(">q", sample.t_s), struct.pack("<q", sample.t_s),
                      struct.pack(">3q", lat, lon, speed)}
            if index + 1 < len(samples):
                forms.add(f"{speed},{samples[index + 1].values[2]}".encode())
    return {form for form in forms if len(form) >= 8 and len(form.strip(b"\0")) >= MIN_SIGNIFICANT_BYTES}


def ledger_haystacks(url: str, programme_id: int, owners: list[Owner]) -> list[bytes]:
    """Everything the node serves about the run: every block with its raw txs, the programme, each
    enrollment and each paid claim."""
    out = []
    with httpx.Client(base_url=url, timeout=WAIT_S) as http:
        latest = http.get("/blocks/latest").json()["height"]
        for height in range(1, latest + 1):
            block = http.get(f"/blocks/{height}", params={"txs": "true"}).json()
            out += [bytes.fromhex(tx) for tx in block.pop("txs") or []]
            out.append(repr(block).encode())
        out.append(http.get("/query/mobility/programme", params={"id": programme_id}).content)
        for owner in owners:
            for trip in owner.trips:
                out.append(http.get("/query/mobility/claim", params={"programme": programme_id,
                                                                     "commitment": trip.commitment.hex()}).content)
    return out


def store_files(folder: Path) -> list[bytes]:
    """Every file of the node's store as it lies on disk (the SQLite database and its WAL: blocks, the
    state at every version kept, indexes), for a scan of what the host itself holds."""
    return [path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()]


def scan(forms: set[bytes], haystacks: list[bytes]) -> list[bytes]:
    """The forms found in any haystack, in one pass over each (Aho-Corasick: linear in the bytes scanned
    plus the matches, whatever the number of forms; testing each form with `in` was forms x bytes). A
    form written as digits counts only where no letter or digit touches it: a number's text inside a
    longer number (a block's time in ns, an AnonCreds proof) or a hash's hex is not that number."""
    import ahocorasick  # the sim extra's; its wheels search text, so bytes travel as latin-1 (one char a byte)

    automaton = ahocorasick.Automaton()
    for form in forms:
        automaton.add_word(form.decode("latin-1"), len(form))
    if len(automaton) == 0:
        return []
    automaton.make_automaton()
    found: set[bytes] = set()
    for haystack in haystacks:  # one at a time: a form cannot match across two haystacks' boundary
        for end, length in automaton.iter(haystack.decode("latin-1")):
            form = haystack[end + 1 - length:end + 1]
            if _is_number_text(form) and (_in_token(haystack, end - length) or _in_token(haystack, end + 1)):
                continue  # digits inside a longer number or a hash's hex are not that number
            found.add(form)
    return sorted(found)


def _is_number_text(form: bytes) -> bool:
    return form[:1].isdigit() and form[-1:].isdigit()


def _in_token(haystack: bytes, index: int) -> bool:
    """A letter or digit at `index`: the match continues a longer word (hex, a nanosecond time, a proof)."""
    return 0 <= index < len(haystack) and haystack[index:index + 1].isalnum()


def run_rewarded_traffic(url: str, sponsor: PrivateKey, office: PrivateKey, office_secret: bytes, sim: TrafficSim,
                         terms: Terms = Terms(), on_step=None, on_claim=None, on_phase=None,
                         host: NodeHost | None = None, say: Callable[[str], None] = lambda _: None) -> dict:
    """The whole run against the node at `url`: programme, enrollment, (with `host`: the fleet connected,
    each trip published into its owner's vault and read back by the owner), traffic, claims, summary, scan."""
    phase = on_phase or (lambda name, total: None)
    with IdentityClient(url, timeout_s=WAIT_S) as client:
        chain_id, programme_id, period = start_programme(client, sponsor, office, terms)
        fleet = [] if host is None else connect_fleet(url, host, len(sim.classes), sim.work / "fleet", say)
        say(f"enrolling {len(sim.classes)} owners" + (" at the office's enrollment desk" if fleet else ""))
        owners = enroll_fleet(client, chain_id, programme_id, period, office, office_secret, sim.classes, fleet)
        trips: list[Trip] = []
        closer = trip_closer(owners, chain_id, programme_id)

        def on_trip(trip: Trip) -> None:
            trips.append(trip)
            closer(trip)
            if fleet:
                publish_trip(fleet[trip.vehicle], trip.telemetry)

        traffic = sim.run(on_trip=on_trip, on_step=on_step)
        if fleet:
            say("owners reading their trips back from their vaults")
            traffic["vaults"] = read_back(url, owners, fleet, sim.city)
        phase("proving and claiming", claimable(owners, terms.min_score))
        counts = claim_trips(client, chain_id, programme_id, owners, terms, sim.work, on_claim)
        summary = rewards_summary(client, programme_id, owners)
    forms = sample_forms(trips)
    haystacks = ledger_haystacks(url, programme_id, owners)
    served = sum(map(len, haystacks))
    if host is not None and host.ledger_folder is not None:
        haystacks += store_files(host.ledger_folder)
    found = scan(forms, haystacks)
    summary.update(counts, enrollment="desk" if fleet else "office-signed")
    return {**traffic, "rewards": summary,
            "privacy_scan": {"forms": len(forms), "found": len(found), "examples": [form.hex() for form in found[:5]],
                             "api_bytes": served, "store_bytes": sum(map(len, haystacks)) - served}}
