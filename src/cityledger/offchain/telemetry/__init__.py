"""Telemetry off the chain: what a device sends and what the gateway checks, never in clear.

    device:  DeviceSealer(key, DeviceConfig(did, owner vault key, data set, schema), counter)
             .seal(window_start_s, samples, consumer_keys) -> message bytes (signed, sealed)
    gateway: verify_message(bytes, lookup, last_seq)   -> VerifiedRecord (still ciphertext)
             compute_records_root(record ids)           -> one root per interval to anchor
    owner:   open_record(stored, wrap, vault key)       -> samples
    broker:  broker.Broker(folder).add_device(did)      -> the device's MQTT password (Mosquitto, a child process)
    gateway: gateway.Gateway(...).start()               -> subscribes, verifies, journals, acknowledges, files in
                                                           vaults, anchors roots (shard=k, shards=n: a share of the fleet)
             journal.Journal, subscriber.Subscriber     -> its journal (one fsync a batch), its MQTT connection
    shards:  shards.ShardProcess(spec, fleet)           -> gateway k of n as a child process, its roots handed
             fleet.FleetAnchor(...).tick()                 to the node, which anchors one root per interval
                                                           over them (anchor.FleetProof: two-level proofs)

docs/PRIVACY.md says who can read what.
"""

from .anchor import (
    MAX_RECORDS_PER_ROOT,
    InclusionProof,
    compute_inclusion_proof,
    compute_inclusion_proofs,
    compute_records_root,
    is_included,
)
from .crypto import VaultKey, open_record, unwrap_data_key
from .device import DeviceConfig, DeviceSealer, SequenceCounter, group_windows, seal_window
from .format import (
    MAX_CONSUMER_WRAPS,
    MAX_MESSAGE_BYTES,
    MAX_WINDOW_S,
    SCHEMAS,
    WINDOW_S,
    RecordHeader,
    Sample,
    Schema,
    StoredRecord,
    TelemetryError,
    TelemetryMessage,
    WrappedKey,
    compute_record_id,
    compute_window_start,
)
from .verify import DeviceEntry, VerifiedRecord, is_signed_by, verify_message

__all__ = [
    "DeviceConfig",
    "DeviceEntry",
    "DeviceSealer",
    "InclusionProof",
    "MAX_CONSUMER_WRAPS",
    "MAX_MESSAGE_BYTES",
    "MAX_RECORDS_PER_ROOT",
    "MAX_WINDOW_S",
    "RecordHeader",
    "SCHEMAS",
    "Sample",
    "Schema",
    "SequenceCounter",
    "StoredRecord",
    "TelemetryError",
    "TelemetryMessage",
    "VaultKey",
    "VerifiedRecord",
    "WINDOW_S",
    "WrappedKey",
    "compute_inclusion_proof",
    "compute_inclusion_proofs",
    "compute_record_id",
    "compute_records_root",
    "compute_window_start",
    "group_windows",
    "is_included",
    "is_signed_by",
    "open_record",
    "seal_window",
    "unwrap_data_key",
    "verify_message",
]
