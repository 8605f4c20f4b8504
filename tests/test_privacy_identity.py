"""Privacy: a simulated city of 1,000 residents leaves none of their personal data on the ledger.

Every resident gets a wallet, pseudonymous accounts, ledger activity (funding, payments) and a real
AnonCreds Resident ID from the ID office; some of them bind vehicles on the ledger with
registration credentials, one sells a vehicle, and the ID office revokes a few IDs. Then every
block, all state and the node's database files are searched for every resident's name, birth date,
ID number and district, as plain text, hex (both cases) and base64 (all three alignments).

Issuance costs about 140 ms of CPU per credential (the holder's request and check, the office's
signature: all in the anoncreds library, which releases the GIL), so the exchanges run on a few
threads at once, as a city's residents would on their own phones. CITYLEDGER_PRIVACY_CREDENTIALS
makes the city bigger than 1,000 (never smaller).
"""

from __future__ import annotations

import base64
import dataclasses
import os
import random
import time
from concurrent.futures import ThreadPoolExecutor

from test_identity_fixtures import TODAY, City
from cityledger.core.encoding import encode
from cityledger.core.keys import PrivateKey
from cityledger.modules.bank import MultiSend, Output, Transfer
from cityledger.modules.devices import AcceptTransfer, BindDevice, OfferTransfer, compute_device_did
from cityledger.offchain.identity import DEVICE_MANUFACTURER, RESIDENT_ID, RESIDENT_ID_TYPE, Verifier
from cityledger.offchain.identity.devices import build_registration, prove_ownership

N_RESIDENTS = max(1_000, int(os.environ.get("CITYLEDGER_PRIVACY_CREDENTIALS", "1000")))
N_VEHICLES = 8
N_REVOKED = 5
ISSUE_THREADS = max(2, os.cpu_count() or 2)
GIVEN = ["Alma", "Bruno", "Carla", "Dario", "Elena", "Fritz", "Greta", "Hannes", "Ida", "Jonas",
         "Klara", "Linus", "Mila", "Noah", "Olga", "Paul", "Rosa", "Samir", "Tilda", "Vera"]
FAMILY = ["Albrecht", "Baumann", "Conrad", "Dietrich", "Engel", "Fischer", "Gruber", "Hartmann", "Imhof", "Jansen",
          "Keller", "Lorenz", "Maier", "Neumann", "Oswald", "Pohl", "Quandt", "Richter", "Schubert", "Thiel",
          "Ulrich", "Vogel", "Walther", "Zimmer", "Adler", "Brandt", "Cordes", "Dreyer", "Eckert", "Franke",
          "Geiger", "Horn", "Ibsen", "Jaeger", "Kraus", "Lindner", "Moser", "Nagel", "Otto", "Peters",
          "Rieger", "Sommer", "Tauber", "Unger", "Voss", "Wagner", "Xander", "Yildiz", "Zeller", "Arnold"]
DISTRICTS = ["Nordstadt", "Altstadt", "Weststadt", "Oststadt", "Suedviertel", "Hafenquartier", "Bergheim",
             "Seeblick"]


def make_residents(count: int) -> list[dict]:
    """Synthetic residents with unique names and ID numbers."""
    rng = random.Random(2024)
    names = [f"{g} {f}" for f in FAMILY for g in GIVEN]
    if count > len(names):  # double-barrelled family names for a bigger city
        names += [f"{g} {f}-{h}" for f in FAMILY for h in FAMILY if f != h for g in GIVEN]
    rng.shuffle(names)
    residents = []
    for index in range(count):
        birth = rng.randint(1940, 2005) * 10_000 + rng.randint(1, 12) * 100 + rng.randint(1, 28)
        since = rng.randint(max(birth // 10_000, 1990), 2023) * 10_000 + rng.randint(1, 12) * 100 + rng.randint(1, 28)
        residents.append({"name": names[index], "birth_date": birth, "district": rng.choice(DISTRICTS),
                          "resident_since": since, "id_number": f"CID-{rng.randrange(10**7):07d}-{index:04d}"})
    return residents


# -- the search ------------------------------------------------------------------------------------

def encodings(secret: bytes) -> list[bytes]:
    """The forms a secret could take in a dump: itself, hex, and base64 at each byte alignment."""
    forms = [secret, secret.hex().encode(), secret.hex().upper().encode()]
    for pad in range(3):
        text = base64.b64encode(b"\0" * pad + secret)
        total = pad + len(secret)
        start = {0: 0, 1: 2, 2: 3}[pad]
        end = 4 * (total // 3) + (total % 3)
        if end - start >= 8:
            forms.append(text[start:end])
    return forms


def find_secrets(dump: bytes, secrets: dict[bytes, str]) -> list[tuple[str, bytes]]:
    """Every (owner, form) whose form occurs in dump; digit-only forms must stand alone."""
    probes: dict[bytes, list[tuple[bytes, str]]] = {}
    for secret, owner in secrets.items():
        for form in encodings(secret):
            probes.setdefault(form[:8], []).append((form, owner))
    found = []
    get = probes.get
    for index in range(len(dump) - 7):
        candidates = get(dump[index:index + 8])
        if not candidates:
            continue
        for form, owner in candidates:
            if dump.startswith(form, index) and not _inside_number(dump, index, form):
                found.append((owner, form))
    return found


def _inside_number(dump: bytes, index: int, form: bytes) -> bool:
    """True if a digit-only form is part of a longer run of digits (e.g. inside a proof's big number)."""
    if not form.isdigit():
        return False
    before = dump[index - 1:index]
    after = dump[index + len(form):index + len(form) + 1]
    return before.isdigit() or after.isdigit()


def test_search_finds_planted_secrets():
    secrets = {b"Alma Fischer": "name", b"19900101": "birth"}
    for secret in secrets:
        for form in encodings(secret):
            assert find_secrets(b"\x00\x01" + form + b"\x02", secrets), form
    assert find_secrets(b"x" + base64.b64encode(b"ab" + b"Alma Fischer") + b"y", secrets)
    assert not find_secrets(b"7319900101555", {b"19900101": "birth"})


# -- the city --------------------------------------------------------------------------------------

def simulate(city: City, residents: list[dict]) -> dict:
    """Run the city; return timings."""
    timings = {}
    wallets = [city.wallet() for _ in residents]
    accounts = [wallet.account("payments") for wallet in wallets]
    funder = city.members[2]
    for start in range(0, len(accounts), 250):
        outputs = [Output(a.address(), 1_000_000) for a in accounts[start:start + 250]]
        city.ledger.send([funder], [MultiSend(outputs)]).raise_for_error()
    started = time.perf_counter()
    payments = [city.ledger.build([a], [Transfer(accounts[(i + 1) % len(accounts)].address(), 1_000)])
                for i, a in enumerate(accounts)]
    for start in range(0, len(payments), 250):
        assert all(o.ok for o in city.ledger.commit_block(payments[start:start + 250]))
    timings["payments_s"] = time.perf_counter() - started

    office = id_office(city, len(residents))
    started, cpu_started = time.perf_counter(), time.process_time()
    issue_all(city, office, wallets, residents)
    timings["issue_s"] = time.perf_counter() - started
    timings["issue_cpu_s"] = time.process_time() - cpu_started  # all threads: above issue_s when parallel
    timings["issue_ms_each"] = 1000 * timings["issue_s"] / len(residents)
    assert all(len(wallet.credentials()) == 1 for wallet in wallets)

    verifier = Verifier(city.ledger)
    for wallet in wallets[:3]:
        request = verifier.resident_request(TODAY)
        verifier.verify(request, wallet.present(request, city.ledger))

    started = time.perf_counter()
    vehicles = bind_vehicles(city, wallets[:N_VEHICLES])
    sell_vehicle(city, wallets[0], wallets[1], vehicles[0])
    timings["vehicles_s"] = time.perf_counter() - started
    office.revoke([person["id_number"] for person in residents[:N_REVOKED]])
    return timings


def id_office(city: City, residents: int):
    """The ID office, its revocation registry big enough for every resident (1,024 by default)."""
    if residents < RESIDENT_ID_TYPE.max_cred_num:
        return city.id_office()
    size = 1 << residents.bit_length()
    return city.office("id", 0x41, dataclasses.replace(RESIDENT_ID_TYPE, max_cred_num=size))


def issue_all(city: City, office, wallets, residents: list[dict]) -> None:
    """Every resident's offer / request / issue / store exchange, ISSUE_THREADS at a time."""
    def issue(pair) -> str:
        wallet, person = pair
        return city.issue(office, wallet, RESIDENT_ID, person, person["id_number"])

    with ThreadPoolExecutor(ISSUE_THREADS, thread_name_prefix="resident") as pool:
        list(pool.map(issue, zip(wallets, residents)))


def bind_vehicles(city: City, wallets) -> list[str]:
    """Each wallet's 'vehicle' account gets a registration credential and binds a new vehicle."""
    maker = city.offices.get("maker") or city.office("maker", 0x61)
    assert city.accredit(maker.did, DEVICE_MANUFACTURER) == "executed"
    dids = []
    for index, wallet in enumerate(wallets):
        device = PrivateKey(2, (index + 1).to_bytes(2, "big") * 16)
        message = build_registration(city.chain_id, "vehicle", "CityCar-e1", device, maker.did, maker.keys[0])
        city.ledger.send(maker.keys, [message]).raise_for_error()
        did = compute_device_did(device.public_key)
        owner = wallet.account("vehicle")
        city.registration(wallet, did, owner, f"REG-{index}")
        proof = prove_ownership(wallet, city.ledger, city.chain_id, did, owner)
        city.ledger.send([owner], [BindDevice(did, proof)]).raise_for_error()
        dids.append(did)
    return dids


def sell_vehicle(city: City, seller_wallet, buyer_wallet, did: str) -> None:
    seller, buyer = seller_wallet.account("vehicle"), buyer_wallet.account("vehicle", 1)
    city.ledger.send([seller], [OfferTransfer(did, buyer.address())]).raise_for_error()
    city.registration(buyer_wallet, did, buyer, "REG-sale")
    proof = prove_ownership(buyer_wallet, city.ledger, city.chain_id, did, buyer)
    city.ledger.send([buyer], [AcceptTransfer(did, proof)]).raise_for_error()


def dump_ledger(city: City) -> bytes:
    """Every block, all state, and the node's database files."""
    store = city.ledger.store
    parts = [encode(store.get_block(h)) for h in range(0, store.last_height() + 1) if store.get_block(h)]
    parts += [key + value for key, value in store.iter_prefix(b"")]
    for suffix in ("", "-wal"):
        path = store.path + suffix
        if os.path.exists(path):
            parts.append(open(path, "rb").read())
    return b"\n".join(parts)


def test_no_personal_data_of_1000_residents_on_the_ledger(tmp_path):
    started = time.perf_counter()
    residents = make_residents(N_RESIDENTS)
    city = City(tmp_path)
    timings = simulate(city, residents)
    dump = dump_ledger(city)
    secrets: dict[bytes, str] = {}
    for person in residents:
        for field in ("name", "birth_date", "id_number"):
            secrets[str(person[field]).encode()] = f"{field} of {person['id_number']}"
    for district in DISTRICTS:
        secrets[district.encode()] = f"district {district}"
    scan_started = time.perf_counter()
    leaks = find_secrets(dump, secrets)
    timings["scan_s"] = time.perf_counter() - scan_started
    timings["dump_mb"] = len(dump) / 1e6
    timings["total_s"] = time.perf_counter() - started
    print(f"\nprivacy: {N_RESIDENTS} residents, {N_RESIDENTS} credentials, {N_VEHICLES} vehicles, "
          + ", ".join(f"{k}={v:.2f}" for k, v in sorted(timings.items())))
    assert city.ledger.height() > 10 and len(dump) > 100_000
    assert leaks == [], leaks[:10]
    city.ledger.app.check_invariants()
