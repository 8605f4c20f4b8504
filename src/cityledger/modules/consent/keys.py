"""Every state key of the consent module, built in one place."""

from ...core.statekeys import PREFIX_CONSENT, collection_prefix, make_key

_DATA_SET = 0x01
_CONSENT = 0x02
_BY_DATA_SET = 0x03
_BY_CONSUMER = 0x04
_NEXT_CONSENT_ID = 0x05
_LOG_ANCHOR = 0x06
_LOG_HEAD = 0x07
_RECORDS_ROOT = 0x08
_GATEWAY_ROOT = 0x09
_GATEWAY_LAST = 0x0A
_VAULT_KEY = 0x0B

ID_BYTES = 8  # consent ids and sequence numbers in keys: big-endian, so keys sort by number

DATA_SETS_PREFIX = collection_prefix(PREFIX_CONSENT, _DATA_SET)
CONSENTS_PREFIX = collection_prefix(PREFIX_CONSENT, _CONSENT)
BY_DATA_SET_PREFIX = collection_prefix(PREFIX_CONSENT, _BY_DATA_SET)
BY_CONSUMER_PREFIX = collection_prefix(PREFIX_CONSENT, _BY_CONSUMER)
LOG_ANCHORS_PREFIX = collection_prefix(PREFIX_CONSENT, _LOG_ANCHOR)
LOG_HEADS_PREFIX = collection_prefix(PREFIX_CONSENT, _LOG_HEAD)
RECORDS_ROOTS_PREFIX = collection_prefix(PREFIX_CONSENT, _RECORDS_ROOT)
GATEWAY_ROOTS_PREFIX = collection_prefix(PREFIX_CONSENT, _GATEWAY_ROOT)
GATEWAY_LASTS_PREFIX = collection_prefix(PREFIX_CONSENT, _GATEWAY_LAST)
VAULT_KEYS_PREFIX = collection_prefix(PREFIX_CONSENT, _VAULT_KEY)
NEXT_CONSENT_ID_KEY = make_key(PREFIX_CONSENT, _NEXT_CONSENT_ID)


def _n(number: int) -> bytes:
    return number.to_bytes(ID_BYTES, "big")


def data_set_key(data_set: str) -> bytes:
    """Key of a data set record, by its id."""
    return make_key(PREFIX_CONSENT, _DATA_SET, data_set.encode())


def consent_key(consent_id: int) -> bytes:
    """Key of a consent record, by its id."""
    return make_key(PREFIX_CONSENT, _CONSENT, _n(consent_id))


def by_data_set_prefix(data_set: str) -> bytes:
    """Prefix of a data set's consent index entries."""
    return make_key(PREFIX_CONSENT, _BY_DATA_SET, data_set.encode())


def by_data_set_key(data_set: str, consent_id: int) -> bytes:
    """Index entry: this consent is over this data set."""
    return make_key(PREFIX_CONSENT, _BY_DATA_SET, data_set.encode(), _n(consent_id))


def by_consumer_prefix(consumer: str) -> bytes:
    """Prefix of a consumer's consent index entries."""
    return make_key(PREFIX_CONSENT, _BY_CONSUMER, consumer.encode())


def by_consumer_key(consumer: str, consent_id: int) -> bytes:
    """Index entry: this consent is granted to this consumer DID."""
    return make_key(PREFIX_CONSENT, _BY_CONSUMER, consumer.encode(), _n(consent_id))


def log_anchors_prefix(service: str, subject: str) -> bytes:
    """Prefix of one access log's anchors."""
    return make_key(PREFIX_CONSENT, _LOG_ANCHOR, service.encode(), subject.encode())


def log_anchor_key(service: str, subject: str, seq: int) -> bytes:
    """Key of the seq-th anchor of a (service, subject) access log."""
    return make_key(PREFIX_CONSENT, _LOG_ANCHOR, service.encode(), subject.encode(), _n(seq))


def log_head_key(service: str, subject: str) -> bytes:
    """Key of the last anchor's sequence number of a (service, subject) access log."""
    return make_key(PREFIX_CONSENT, _LOG_HEAD, service.encode(), subject.encode())


def records_roots_prefix(data_set: str) -> bytes:
    """Prefix of a data set's records roots."""
    return make_key(PREFIX_CONSENT, _RECORDS_ROOT, data_set.encode())


def records_root_key(data_set: str, interval: int) -> bytes:
    """Key of a data set's records root for one interval."""
    return make_key(PREFIX_CONSENT, _RECORDS_ROOT, data_set.encode(), _n(interval))


def gateway_roots_prefix(gateway: str) -> bytes:
    """Prefix of a gateway's fleet-wide records roots."""
    return make_key(PREFIX_CONSENT, _GATEWAY_ROOT, gateway.encode())


def gateway_root_key(gateway: str, interval: int) -> bytes:
    """Key of a gateway's fleet-wide records root for one interval."""
    return make_key(PREFIX_CONSENT, _GATEWAY_ROOT, gateway.encode(), _n(interval))


def gateway_last_key(gateway: str) -> bytes:
    """Key of the last interval a gateway anchored a fleet-wide root for."""
    return make_key(PREFIX_CONSENT, _GATEWAY_LAST, gateway.encode())


def vault_key_key(subject: str) -> bytes:
    """Key of the vault key registered for a subject (a 'city…' account or a DID)."""
    return make_key(PREFIX_CONSENT, _VAULT_KEY, subject.encode())
