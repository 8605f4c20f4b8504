"""Every state key of the battery passport module, built in one place."""

from ...core.statekeys import PREFIX_BATTERIES, collection_prefix, make_key

_PASSPORT = 0x01
_ID_DMC = 0x02
_BATTERY = 0x03
_HISTORY = 0x04
_REPORT = 0x05
_STAGE_COUNT = 0x06
_BATCH = 0x07
_RECYCLER = 0x08
_LOG_ANCHOR = 0x09
_LOG_LAST = 0x0A
_LOG_ROOT = 0x0B
_LOG_ROOT_LAST = 0x0C
_STAGE_INDEX = 0x0D
_SECOND_LIFE = 0x0E
_RECYCLER_YEAR = 0x0F
_REPORT_ROOT = 0x10
_REPORT_ROOT_LAST = 0x11

PASSPORTS_PREFIX = collection_prefix(PREFIX_BATTERIES, _PASSPORT)
STAGE_COUNTS_PREFIX = collection_prefix(PREFIX_BATTERIES, _STAGE_COUNT)
LOG_LAST_PREFIX = collection_prefix(PREFIX_BATTERIES, _LOG_LAST)
RECYCLERS_PREFIX = collection_prefix(PREFIX_BATTERIES, _RECYCLER)


def passport_key(passport: str) -> bytes:
    """Key of a passport record, by passport id."""
    return make_key(PREFIX_BATTERIES, _PASSPORT, passport.encode())


def id_dmc_key(id_dmc: str) -> bytes:
    """Key of the idDmc index: the latest passport issued under that identifier."""
    return make_key(PREFIX_BATTERIES, _ID_DMC, id_dmc.encode())


def battery_key(battery: str) -> bytes:
    """Key of the battery index: a battery device's current (latest) passport."""
    return make_key(PREFIX_BATTERIES, _BATTERY, battery.encode())


def history_key(passport: str, index: int) -> bytes:
    """Key of a passport's index-th life-cycle event (0-based, big-endian so keys sort in order)."""
    return make_key(PREFIX_BATTERIES, _HISTORY, passport.encode(), index.to_bytes(4, "big"))


def report_key(passport: str, sequence: int) -> bytes:
    """Key of a passport's report commitment by its sequence number."""
    return make_key(PREFIX_BATTERIES, _REPORT, passport.encode(), sequence.to_bytes(4, "big"))


def stage_count_key(stage: str) -> bytes:
    """Key of the number of passports in one stage."""
    return make_key(PREFIX_BATTERIES, _STAGE_COUNT, stage.encode())


def batch_key(recycler: str, batch: str) -> bytes:
    """Key of a recycling batch, by recycler DID and batch id."""
    return make_key(PREFIX_BATTERIES, _BATCH, recycler.encode(), batch.encode())


def recycler_key(recycler: str) -> bytes:
    """Key of a recycler's totals."""
    return make_key(PREFIX_BATTERIES, _RECYCLER, recycler.encode())


def log_anchor_key(passport: str, index: int) -> bytes:
    """Key of a passport's index-th access-log anchor (1-based, big-endian so keys sort in order)."""
    return make_key(PREFIX_BATTERIES, _LOG_ANCHOR, passport.encode(), index.to_bytes(4, "big"))


def log_last_key(passport: str) -> bytes:
    """Key of a passport's latest access-log anchor."""
    return make_key(PREFIX_BATTERIES, _LOG_LAST, passport.encode())


def log_root_key(service: str, seq: int) -> bytes:
    """Key of a passport service's seq-th anchored log root (1-based, big-endian so keys sort in order)."""
    return make_key(PREFIX_BATTERIES, _LOG_ROOT, service.encode(), seq.to_bytes(4, "big"))


def log_root_last_key(service: str) -> bytes:
    """Key of a passport service's latest anchored log root."""
    return make_key(PREFIX_BATTERIES, _LOG_ROOT_LAST, service.encode())


def stage_index_prefix(stage: str) -> bytes:
    """Prefix of the stage index's keys for one stage."""
    return make_key(PREFIX_BATTERIES, _STAGE_INDEX, stage.encode())


def stage_index_key(stage: str, passport: str) -> bytes:
    """Key of the stage index: `passport` is at `stage` (sorted by passport id within a stage)."""
    return make_key(PREFIX_BATTERIES, _STAGE_INDEX, stage.encode(), passport.encode())


SECOND_LIFE_PREFIX = collection_prefix(PREFIX_BATTERIES, _SECOND_LIFE)


def second_life_key(passport: str) -> bytes:
    """Key of the second-life index: an open, uncollected successor of a repurposed passport."""
    return make_key(PREFIX_BATTERIES, _SECOND_LIFE, passport.encode())


def recycler_year_key(recycler: str, year: int) -> bytes:
    """Key of a recycler's totals over the batches of one calendar year (UTC, by block time)."""
    return make_key(PREFIX_BATTERIES, _RECYCLER_YEAR, recycler.encode(), year.to_bytes(2, "big"))


def report_root_key(service: str, seq: int) -> bytes:
    """Key of a passport service's seq-th committed SoH report batch root."""
    return make_key(PREFIX_BATTERIES, _REPORT_ROOT, service.encode(), seq.to_bytes(4, "big"))


def report_root_last_key(service: str) -> bytes:
    """Key of a passport service's latest committed SoH report batch root."""
    return make_key(PREFIX_BATTERIES, _REPORT_ROOT_LAST, service.encode())
