"""Battery passport messages (versioned), stored records and the life-cycle table.

A passport belongs to one physical battery, a registered device of kind "battery" whose BMS key
signs its state-of-health reports. The passport documents live off chain; the ledger keeps their
SHA-256 hashes, the life-cycle stage and its history, report commitments and recycling records.
"""

from __future__ import annotations

from ...core.encoding import Message, Record

# Life-cycle stages (EU Regulation 2023/1542); a closed stage takes no further event.
STAGE_MANUFACTURED = "manufactured"
STAGE_PLACED_ON_MARKET = "placed_on_market"
STAGE_IN_SERVICE = "in_service"
STAGE_REPAIRED = "repaired"
STAGE_REPURPOSED = "repurposed"
STAGE_REMANUFACTURED = "remanufactured"
STAGE_WASTE = "waste"
STAGE_RECYCLED = "recycled"
STAGES = (STAGE_IN_SERVICE, STAGE_MANUFACTURED, STAGE_PLACED_ON_MARKET, STAGE_RECYCLED, STAGE_REMANUFACTURED,
          STAGE_REPAIRED, STAGE_REPURPOSED, STAGE_WASTE)  # sorted
CLOSED_STAGES = (STAGE_RECYCLED, STAGE_REMANUFACTURED, STAGE_REPURPOSED)
SUCCESSOR_STAGES = (STAGE_REMANUFACTURED, STAGE_REPURPOSED)  # closed by issuing a new passport
REPORTING_STAGES = (STAGE_IN_SERVICE, STAGE_REPAIRED)
# A repurposed battery's successor passport is in its second life at these stages (until collected).
SECOND_LIFE_STAGES = (STAGE_IN_SERVICE, STAGE_PLACED_ON_MARKET, STAGE_REPAIRED)

# Roles: the credential type an organisation DID is accredited for through governance.
ROLE_MANUFACTURER = "battery-manufacturer"
ROLE_VEHICLE_MAKER = "vehicle-manufacturer"
ROLE_REPAIRER = "battery-repairer"
ROLE_SECOND_LIFE = "battery-second-life-operator"
ROLE_REMANUFACTURER = "battery-remanufacturer"
ROLE_RECYCLER = "battery-recycler"
ROLE_PASSPORT_SERVICE = "battery-passport-service"  # a node's passport service: anchors its access logs' root

# Events: (stages it may follow, the stage it leads to, the role that may make it).
EVENT_REGISTERED = "registered"
EVENT_PLACED_ON_MARKET = "placed_on_market"
EVENT_INSTALLED = "installed"
EVENT_REPAIRED = "repaired"
EVENT_REPURPOSED = "repurposed"
EVENT_REMANUFACTURED = "remanufactured"
EVENT_SUCCEEDED = "succeeded"  # the first event of a repurposed or remanufactured battery's new passport
EVENT_COLLECTED = "collected"
EVENT_RECYCLED = "recycled"
TRANSITIONS: dict[str, tuple[tuple[str, ...], str, str]] = {
    EVENT_REGISTERED: ((), STAGE_MANUFACTURED, ROLE_MANUFACTURER),
    EVENT_PLACED_ON_MARKET: ((STAGE_MANUFACTURED,), STAGE_PLACED_ON_MARKET, ROLE_MANUFACTURER),
    EVENT_INSTALLED: ((STAGE_PLACED_ON_MARKET,), STAGE_IN_SERVICE, ROLE_VEHICLE_MAKER),
    EVENT_REPAIRED: (REPORTING_STAGES, STAGE_REPAIRED, ROLE_REPAIRER),
    EVENT_REPURPOSED: (REPORTING_STAGES, STAGE_REPURPOSED, ROLE_SECOND_LIFE),
    EVENT_REMANUFACTURED: (REPORTING_STAGES, STAGE_REMANUFACTURED, ROLE_REMANUFACTURER),
    EVENT_SUCCEEDED: ((), STAGE_PLACED_ON_MARKET, ""),  # made by the repurpose/remanufacture that closes the old
    EVENT_COLLECTED: ((STAGE_MANUFACTURED, STAGE_PLACED_ON_MARKET, STAGE_IN_SERVICE, STAGE_REPAIRED), STAGE_WASTE,
                      ROLE_RECYCLER),
    EVENT_RECYCLED: ((STAGE_WASTE,), STAGE_RECYCLED, ROLE_RECYCLER),
}

TIER_PUBLIC = "public"
TIER_LEGITIMATE = "legitimate"
TIER_AUTHORITY = "authority"
TIERS = (TIER_AUTHORITY, TIER_LEGITIMATE, TIER_PUBLIC)  # sorted
ELEMENTS = ("co", "cu", "li", "ni", "pb")  # the Materials fields, sorted

HASH_LEN = 32
MAX_ID_DMC_LEN = 64
MAX_BATCH_ID_LEN = 64
MAX_DOCUMENT_VERSIONS = 64  # per access tier of one passport
MAX_HISTORY = 256  # life-cycle events of one passport (repairs repeat)
MAX_REPORTS = 100_000  # SoH reports of one passport: daily for over 270 years
MAX_BATCH_PASSPORTS = 64  # passports one recycling batch may close
MAX_MASS_G = 10**12  # one batch: a million tonnes, in grams
MAX_TOTAL_MASS_G = 2**63 - 1  # a recycler's running totals stay within a signed 64-bit integer
MAX_LOG_ANCHORS = 100_000  # access-log anchors of one passport: daily for over 270 years
MAX_LOG_COUNT = 2**63 - 1  # an anchored log's entry count stays within a signed 64-bit integer
MAX_LOG_ROOT_LEAVES = 1 << 16  # passport log heads one anchored root covers (offchain/passport/anchoring.py)
MAX_LOG_ROOTS = 2**31 - 1  # anchored roots of one passport service: one a minute for 4,000 years
MAX_REPORT_ROOT_LEAVES = 1 << 16  # SoH reports one committed batch root covers
ZERO_HEAD = bytes(HASH_LEN)  # the "previous head" of a passport's first anchor (the log's genesis)


class RegisterPassport(Message, tag="batteries/1.0/register"):
    """A manufacturer opens the passport of a battery it registered as a device (stage manufactured)."""

    operator: str  # the manufacturer's organisation DID, accredited for ROLE_MANUFACTURER
    passport: str  # UUIDv4, lower case (metadata.passportIdentifier)
    id_dmc: str  # identification.idDmc: the data behind the battery's QR code
    battery: str  # the battery's device DID (devices module, kind "battery")
    public_hash: bytes  # SHA-256 of the first version of each tier's document
    legitimate_hash: bytes
    authority_hash: bytes


class PlaceOnMarket(Message, tag="batteries/1.0/place_on_market"):
    """The responsible manufacturer places the battery on the market."""

    operator: str
    passport: str


class Install(Message, tag="batteries/1.0/install"):
    """A vehicle maker installs the battery in one of its registered vehicles (stage in_service)."""

    operator: str  # accredited for ROLE_VEHICLE_MAKER; the vehicle device's manufacturer
    passport: str
    vehicle: str  # the vehicle's device DID


class ReportHealth(Message, tag="batteries/1.0/report"):
    """A state-of-health report commitment, signed by the battery's own BMS (device) key."""

    passport: str
    sequence: int  # 1 for the passport's first report, then one more each time
    report_hash: bytes  # SHA-256 of the (salted) off-chain report document
    signature: bytes  # the battery device's signature over compute_report_payload(...)


class Repair(Message, tag="batteries/1.0/repair"):
    """An accredited repairer records a repair."""

    operator: str
    passport: str


class Repurpose(Message, tag="batteries/1.0/repurpose"):
    """A second-life operator closes the passport and opens its successor for the same battery."""

    operator: str
    passport: str
    successor: str  # the new passport's UUIDv4
    id_dmc: str  # the successor's idDmc (may equal the old one)
    public_hash: bytes
    legitimate_hash: bytes
    authority_hash: bytes


class Remanufacture(Message, tag="batteries/1.0/remanufacture"):
    """A remanufacturer closes the passport and opens its successor for the same battery."""

    operator: str
    passport: str
    successor: str
    id_dmc: str
    public_hash: bytes
    legitimate_hash: bytes
    authority_hash: bytes


class Collect(Message, tag="batteries/1.0/collect"):
    """An accredited recycler collects the battery as waste."""

    operator: str
    passport: str


class Materials(Record):
    """Masses of the Annex XII elements, in integer grams."""

    co: int
    cu: int
    li: int
    ni: int
    pb: int


class Recycle(Message, tag="batteries/1.0/recycle"):
    """A recycler records one recycling batch of collected batteries: masses in, masses recovered."""

    operator: str
    batch: str  # the recycler's batch identifier, unique per recycler
    passports: list[str]  # sorted, distinct, each in stage waste
    input_mass_g: int  # the batch's total battery mass
    output_mass_g: int  # the mass leaving the process as recycled material (recycling efficiency)
    contained: Materials  # each element's mass in the input
    recovered: Materials  # each element's mass recovered


class UpdateDocument(Message, tag="batteries/1.0/update_document"):
    """The responsible operator records a new version of one access tier's document."""

    operator: str
    passport: str
    tier: str
    version: int  # the new version's number: the tier's current count plus one
    document_hash: bytes


class AnchorAccessLog(Message, tag="batteries/1.0/anchor_access_log"):
    """The responsible operator anchors the head of the passport service's access log (offchain/passport)."""

    operator: str
    passport: str
    head: bytes  # the log's head hash (SHA-256) after its `count`-th entry
    count: int  # the log's entry count at that head; grows with every anchor
    previous: bytes  # the head this anchor follows: the passport's last anchored head, ZERO_HEAD at first


class AnchorLogRoot(Message, tag="batteries/1.0/anchor_log_root"):
    """A passport service anchors one Merkle root over the access-log heads of its passports that moved."""

    service: str  # the service's organisation DID, accredited for ROLE_PASSPORT_SERVICE; the signer controls it
    seq: int  # 1 for the service's first root, then one more each time
    root: bytes  # RFC 9162 Merkle root over the heads (offchain/passport/anchoring.py)
    size: int  # how many heads (leaves) the root covers


class AnchorReportRoot(Message, tag="batteries/1.0/anchor_report_root"):
    """A passport service commits one batch of BMS-signed state-of-health reports it verified and stored.

    The root is over (passport, sequence, report hash) leaves (offchain/passport/reports.py); each
    report's own BMS signature over batteries' report payload is kept with it off chain, so anyone
    holding a report can check it against the battery's device key and the root.
    """

    service: str  # accredited for ROLE_PASSPORT_SERVICE; the signer controls it
    seq: int  # 1 for the service's first report batch, then one more each time
    root: bytes
    size: int  # reports in the batch


class LogRoot(Record):
    """One anchored root of a passport service's access-log heads (or of a report batch: same shape)."""

    seq: int
    root: bytes
    size: int
    height: int


class LogAnchor(Record):
    """One anchor of the access log's head, chained to the previous one."""

    index: int  # 1 for a passport's first anchor, then one more each time
    head: bytes
    count: int
    previous: bytes
    height: int


class DocumentVersion(Record):
    """One version of a tier's document: its hash and the height it was recorded at."""

    document_hash: bytes
    height: int


class Documents(Record):
    """Every version of each access tier's document, oldest first."""

    authority: list[DocumentVersion]
    legitimate: list[DocumentVersion]
    public: list[DocumentVersion]


class PassportRecord(Record):
    """A battery passport as the ledger holds it: identifiers, DIDs and hashes only."""

    passport: str
    id_dmc: str
    battery: str  # device DID
    operator: str  # the responsible economic operator's DID
    stage: str
    vehicle: str  # the vehicle's device DID once installed, else ""
    predecessor: str  # "" unless issued for a repurposed or remanufactured battery
    successor: str  # "" unless closed by repurposing or remanufacturing
    documents: Documents
    history_len: int
    report_count: int
    recycling_batch: str  # "" until recycled
    created_height: int
    updated_height: int


class HistoryEntry(Record):
    """One life-cycle event of a passport."""

    event: str
    stage: str  # the stage it led to
    actor: str  # the organisation DID that made it ("" for none)
    height: int


class ReportCommitment(Record):
    """A state-of-health report's commitment: no value in the clear."""

    sequence: int
    report_hash: bytes
    height: int


class RecyclingBatch(Record):
    """One recycling batch."""

    recycler: str
    batch: str
    passports: list[str]
    input_mass_g: int
    output_mass_g: int
    contained: Materials
    recovered: Materials
    height: int


class RecyclerTotals(Record):
    """Sums over a recycler's batches."""

    recycler: str
    batches: int
    batteries: int
    input_mass_g: int
    output_mass_g: int
    contained: Materials
    recovered: Materials
