"""The vault store on an S3-compatible object store (SeaweedFS, MinIO, AWS S3, ...), through boto3.

One owner's vault is a prefix of a shared bucket (the VaultHost names it by a digest of the owner).
A put_many writes the records of one data set as one batch, two objects, whatever their number:

    <prefix>/b/<data set digest>/<last>.<first>.<uid>.<records>.<index bytes>.<wraps>   the batch
    <prefix>/k/<data set digest>/<last>.<first>.<uid>.<wraps>                           its wraps

The batch object is the batch's index (msgpack [(record id, window, size), ...], `index bytes`
long) followed by the sealed records; the keys object holds every wrap of the batch's records
(owner's and consumers'). `last` and `first` are the latest and earliest window start in the batch
(shifted to 0..2**64-1, 20 digits), names sort by `last`, and a batch never spans MAX_BATCH_SPAN_S
or more, so the batches that may hold a window in [lo, hi] are named from `last` = lo to
hi + MAX_BATCH_SPAN_S: `list` and the existence check of `put_many` are one LIST of names plus, for
the batches whose [first, last] overlaps, one ranged GET of their index (cached). A put of windows
newer than everything stored (the gateway's steady state) lists no name at all. A record is read with one ranged GET of the
batch; its key with one GET of the keys object (wraps are never cached: an erasure by another
process must take effect at once). A record looked up by id alone, not seen through `list` or
`put_many`, costs a scan of the owner's batch indexes.

Only hex digits, digits and fixed names reach a key, so no data set or owner text can form a path
(SeaweedFS maps keys to filer paths: a data set named ".." must not climb out of the prefix).
Data sets are named by a digest, which keeps every path part under SeaweedFS's 255-byte limit.

Durability and atomicity: put_many writes the keys objects, then the batch objects, all before it
returns; a record counts as stored once its batch object exists. A crash before that leaves keys
objects that no batch names (the next put writes a new batch with a fresh uid; an erasure deletes
the orphans with the rest). Objects are never overwritten: SeaweedFS would keep the old bytes as a
deleted needle. The server must acknowledge a PUT only once it is durable: AWS S3 does; the
project's SeaweedFS gets an fsync rule on the bucket (seaweedfs.py). One process writes an owner's
vault at a time (the gateway), as with SQLite; any number may read it.

Erasure: destroy_keys deletes the keys objects of a data set (or all), which hold nothing else,
then calls `on_delete(count)`; with the project's SeaweedFS that waits for the deletions to reach
the volumes and vacuums them, so the bytes leave the volume files. Deleting one record (retention)
writes its batch again without it, under a new uid, then deletes the old batch and keys objects.
A versioned bucket would keep every deleted key as an old version: refused.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import boto3
import msgspec
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from .store import MAX_LIST_RECORDS, KeyBlob, PutItem, RecordMeta

if TYPE_CHECKING:
    from .seaweedfs import S3Credentials

RECORD_ID_LEN = 32
MAX_RECIPIENT_BYTES = 64  # a recipient key (X25519: 32 bytes); an S3 key holds no recipient, the bound keeps wraps small
WINDOW_OFFSET = 2**63  # window starts are signed 64-bit; shifted to 0..2**64-1, 20 decimal digits
MAX_BATCH_SPAN_S = 3_600  # a batch object's windows span less than this; list looks back this far for batches
SEAWEED_CHUNK_BYTES = 4 * 1024 * 1024  # SeaweedFS stores an S3 object in needles of this size (what purge counts)
MAX_BATCH_OBJECT_BYTES = 4_000_000  # a batch object closes before this: one needle, unless one record is larger
MAX_CACHED_INDEX_RECORDS = 16_384  # batch index entries (record id, window, place) one owner's store keeps
S3_WORKERS = 16  # concurrent S3 requests of one call (each request waits on the server's fsync)
S3_DELETE_BATCH = 1000  # keys one DeleteObjects request takes (the S3 API's limit)
S3_CONNECT_S = 5  # seconds to open a connection to the S3 endpoint
S3_READ_S = 60  # seconds to wait for an S3 answer
S3_ATTEMPTS = 5  # tries of one S3 request on a throttle or a 5xx (botocore's standard retry mode)
_SCAN_CHUNK = 4 * S3_WORKERS  # batch indexes fetched at a time while scanning for a record id
_CREDENTIAL_ERRORS = ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken",
                      "ExpiredToken", "403")
_MISSING = ("404", "NoSuchKey", "NotFound")
_ENCODER = msgspec.msgpack.Encoder()
_INDEX = msgspec.msgpack.Decoder(list[tuple[bytes, int, int]])  # [(record id, shifted window, size), ...]
_WRAPS = msgspec.msgpack.Decoder(list[tuple[bytes, bytes, bytes, bytes]])  # [(record id, recipient, enc, ct), ...]


class S3StoreError(RuntimeError):
    """The object store refused or failed a request; `field` names the setting to look at."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def make_client(endpoint: str, credentials: "S3Credentials", region: str = "us-east-1"):
    """A boto3 S3 client for endpoint with path-style addressing (no bucket DNS names on a LAN)."""
    config = Config(connect_timeout=S3_CONNECT_S, read_timeout=S3_READ_S, max_pool_connections=S3_WORKERS,
                    retries={"mode": "standard", "max_attempts": S3_ATTEMPTS}, s3={"addressing_style": "path"},
                    request_checksum_calculation="when_required", response_checksum_validation="when_required")
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint, region_name=region, aws_access_key_id=credentials.access_key,
        aws_secret_access_key=credentials.secret_key, config=config)


def explain(exc: Exception, bucket: str) -> S3StoreError:
    """A boto3 failure as an S3StoreError naming the setting that is wrong."""
    if isinstance(exc, EndpointConnectionError):
        return S3StoreError("vaults.endpoint", f"cannot connect to the S3 server ({exc})")
    if isinstance(exc, ClientError):
        code = _code(exc)
        if code in _CREDENTIAL_ERRORS:
            return S3StoreError("vaults.credentials_file", f"the S3 server refused the credentials ({code})")
        if code in ("NoSuchBucket",):
            return S3StoreError("vaults.bucket", f"bucket {bucket!r} does not exist")
        return S3StoreError("vaults.endpoint", f"the S3 server answered {code}: {exc}")
    return S3StoreError("vaults.endpoint", f"S3 request failed: {exc}")


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def open_bucket(client, bucket: str, create: bool) -> None:
    """Check the bucket is reachable with these credentials (created if allowed) and unversioned."""
    try:
        try:
            client.head_bucket(Bucket=bucket)
        except ClientError as exc:
            if _code(exc) not in _MISSING:
                raise
            if not create:
                raise S3StoreError("vaults.bucket", f"bucket {bucket!r} does not exist") from None
            client.create_bucket(Bucket=bucket)
        status = client.get_bucket_versioning(Bucket=bucket).get("Status")
    except (BotoCoreError, ClientError) as exc:
        raise explain(exc, bucket) from None
    if status in ("Enabled", "Suspended"):
        raise S3StoreError("vaults.bucket", f"bucket {bucket!r} has versioning {status}: deleted keys would stay "
                                            "as old versions, so erasure could not destroy them; use an unversioned bucket")


_POOL: list[ThreadPoolExecutor] = []
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    """The threads every store's requests run on (boto3 clients are safe to share across threads)."""
    with _POOL_LOCK:
        if not _POOL:
            _POOL.append(ThreadPoolExecutor(S3_WORKERS, thread_name_prefix="s3-vault"))
        return _POOL[0]


def _parallel(fn, args: list) -> list:
    if len(args) <= 1:
        return [fn(arg) for arg in args]
    return list(_pool().map(fn, args))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _shift(window_start_s: int, field: str) -> int:
    if not isinstance(window_start_s, int) or not -WINDOW_OFFSET <= window_start_s < WINDOW_OFFSET:
        raise ValueError(f"{field}: expected a signed 64-bit integer")
    return window_start_s + WINDOW_OFFSET


@dataclass(frozen=True)
class _Batch:
    """A batch object as its name describes it (windows shifted)."""

    dataset: str
    first: int
    last: int
    uid: str
    records: int
    index_bytes: int
    wraps: int

    @classmethod
    def parse(cls, dataset: str, tail: str) -> "_Batch | None":
        """The batch named `tail` under the data set's folder, or None for a name the store never writes."""
        parts = tail.split(".")
        if len(parts) != 6 or not all(part.isdigit() for i, part in enumerate(parts) if i != 2):
            return None
        last, first, uid, records, index_bytes, wraps = parts
        return cls(dataset, int(first), int(last), uid, int(records), int(index_bytes), int(wraps))

    @property
    def tail(self) -> str:
        return f"{self.last:020d}.{self.first:020d}.{self.uid}.{self.records}.{self.index_bytes}.{self.wraps}"

    @property
    def keys_tail(self) -> str:
        return f"{self.last:020d}.{self.first:020d}.{self.uid}.{self.wraps}"


@dataclass(frozen=True)
class _Entry:
    """Where one record sits: its batch, window (shifted), and bytes in the batch object."""

    batch: _Batch
    record_id: bytes
    window: int
    offset: int
    size: int


class S3VaultStore:
    """One owner's records under `prefix` of `bucket`, through a shared boto3 client."""

    def __init__(self, client, bucket: str, prefix: str, on_delete: Callable[[int], None] | None = None) -> None:
        if not prefix or not all(c in "0123456789abcdef" for c in prefix):
            raise ValueError("prefix: expected lowercase hex digits (the VaultHost's digest of the owner)")
        self.client, self.bucket, self.prefix = client, bucket, prefix
        self.on_delete = on_delete
        self._indexes: OrderedDict[_Batch, list[_Entry]] = OrderedDict()  # batch -> its entries, least recent first
        self._where: dict[bytes, _Entry] = {}
        self._cached = 0
        self._lock = threading.Lock()  # the cache
        self._writing = threading.RLock()  # put_many, delete and destroy_keys of this store, one at a time

    # -- object names and requests -------------------------------------------------------------

    def _batch_key(self, batch: _Batch) -> str:
        return f"{self.prefix}/b/{batch.dataset}/{batch.tail}"

    def _keys_key(self, batch: _Batch) -> str:
        return f"{self.prefix}/k/{batch.dataset}/{batch.keys_tail}"

    def _request(self, method: str, missing=False, **kwargs):
        """One S3 call on the bucket; `missing` is answered when the object does not exist."""
        try:
            return getattr(self.client, method)(Bucket=self.bucket, **kwargs)
        except ClientError as exc:
            if missing is not False and _code(exc) in _MISSING:
                return missing
            raise explain(exc, self.bucket) from None
        except BotoCoreError as exc:
            raise explain(exc, self.bucket) from None

    def _read(self, key: str, first: int | None = None, size: int = 0) -> bytes | None:
        """An object's bytes (or `size` of them from `first`), or None if it does not exist."""
        extra = {} if first is None else {"Range": f"bytes={first}-{first + size - 1}"}
        answer = self._request("get_object", missing=None, Key=key, **extra)
        if answer is None:
            return None
        try:
            return answer["Body"].read()
        except BotoCoreError as exc:
            raise explain(exc, self.bucket) from None

    def _names(self, prefix: str, start_after: str = "") -> Iterator[tuple[str, int]]:
        """Every object under prefix as (key, size), in key order (pages of up to 1000)."""
        kwargs = {"Prefix": prefix, **({"StartAfter": start_after} if start_after else {})}
        while True:
            page = self._request("list_objects_v2", **kwargs)
            for entry in page.get("Contents", []):
                yield entry["Key"], entry.get("Size", 0)
            if not page.get("IsTruncated"):
                return
            kwargs["ContinuationToken"] = page["NextContinuationToken"]

    def _batches(self, dataset: str | None = None, lo: int = 0, hi: int = 2**64) -> Iterator[_Batch]:
        """The batches of a data set digest (None: of all) that may hold a window in [lo, hi], by last window."""
        base = f"{self.prefix}/b/" + ("" if dataset is None else dataset + "/")
        # '/' sorts after '.': starting after "<lo - 1>/" skips the batches whose last window is before lo.
        after = base + f"{lo - 1:020d}/" if dataset is not None and lo >= 1 else ""
        for name, _ in self._names(base, after):
            folder, _, tail = name[len(self.prefix) + 3:].partition("/")
            batch = _Batch.parse(folder, tail)
            if batch is None:
                continue
            if dataset is not None and batch.last >= hi + MAX_BATCH_SPAN_S:
                return  # this batch and every later one begin after hi (a batch spans less than the span)
            if batch.first <= hi:
                yield batch

    # -- the index cache ------------------------------------------------------------------------

    def _remember(self, batch: _Batch, entries: list[_Entry]) -> None:
        with self._lock:
            if batch in self._indexes:
                self._indexes.move_to_end(batch)
                return
            self._indexes[batch] = entries
            self._cached += len(entries)
            for entry in entries:
                self._where[entry.record_id] = entry
            while self._cached > MAX_CACHED_INDEX_RECORDS and len(self._indexes) > 1:
                self._drop(next(iter(self._indexes)))

    def _drop(self, batch: _Batch) -> None:
        for entry in self._indexes.pop(batch, []):
            self._cached -= 1
            if self._where.get(entry.record_id) is entry:
                del self._where[entry.record_id]

    def _forget(self, batch: _Batch) -> None:
        with self._lock:
            self._drop(batch)

    def _index(self, batch: _Batch) -> list[_Entry] | None:
        """A batch's entries (cached, else one ranged GET), or None if the batch is gone."""
        with self._lock:
            cached = self._indexes.get(batch)
        if cached is not None:
            return cached
        raw = self._read(self._batch_key(batch), 0, batch.index_bytes)
        if raw is None:
            return None
        entries = _entries_of(batch, raw)
        self._remember(batch, entries)
        return entries

    def _entries(self, batches: list[_Batch]) -> list[_Entry]:
        """The entries of these batches (their indexes fetched side by side)."""
        return [entry for entries in _parallel(self._index, batches) if entries for entry in entries]

    def _locate(self, record_id: bytes) -> _Entry | None:
        """Where a record sits: from the cache, else by scanning the owner's batch indexes."""
        with self._lock:
            entry = self._where.get(record_id)
        if entry is not None:
            return entry
        for chunk in _chunks(self._batches(), _SCAN_CHUNK):
            # Looked for in what was fetched, not in the cache: a large chunk may evict its own first batches.
            entry = next((e for e in self._entries(chunk) if e.record_id == record_id), None)
            if entry is not None:
                return entry
        return None

    def _at(self, record_id: bytes, read: Callable[[_Entry], object]):
        """read(entry) for the record's place; once more from a fresh scan if its batch was replaced
        (read answers _MOVED: another process deleted a record of that batch meanwhile)."""
        for _ in range(2):
            entry = self._locate(record_id)
            if entry is None:
                return None
            found = read(entry)
            if found is not _MOVED:
                return found
            self._forget(entry.batch)
        return None

    # -- the VaultStore interface ---------------------------------------------------------------

    def put(self, record_id: bytes, blob: bytes, meta: RecordMeta, keys: Sequence[KeyBlob]) -> bool:
        """Store a record and its keys durably; False if that record was already stored."""
        return self.put_many([PutItem(record_id, blob, meta, keys)]) == 1

    def put_many(self, items: Sequence[PutItem]) -> int:
        """Store several records, one batch (keys object, then batch object) per data set; all acknowledged
        before return; the number new."""
        by_dataset: dict[str, dict[bytes, tuple[int, PutItem]]] = {}
        for index, item in enumerate(items):
            window = self._check_item(index, item)
            by_dataset.setdefault(_digest(item.meta.dataset), {}).setdefault(item.record_id, (window, item))
        with self._writing:
            packed = []
            for dataset, group in by_dataset.items():
                windows = [window for window, _ in group.values()]
                overlapping = list(self._batches(dataset, min(windows), max(windows)))
                stored = {entry.record_id for entry in self._entries(overlapping)}
                fresh = sorted((window, rid, item) for rid, (window, item) in group.items() if rid not in stored)
                packed += _pack(dataset, [(window, item) for window, _, item in fresh])
            self._write(packed)
        return sum(batch.records for batch, _, _ in packed)

    def _write(self, packed: list[tuple[_Batch, bytes, bytes]]) -> None:
        """Store packed batches: every keys object, then every batch object, each PUT acknowledged."""
        keys = [(self._keys_key(batch), keys_body) for batch, _, keys_body in packed if keys_body]
        _parallel(lambda pair: self._request("put_object", Key=pair[0], Body=pair[1]), keys)
        # The batch objects go last: a record is listed, and counts as stored, only once its keys are durable.
        batches = [(self._batch_key(batch), body) for batch, body, _ in packed]
        _parallel(lambda pair: self._request("put_object", Key=pair[0], Body=pair[1]), batches)
        for batch, body, _ in packed:
            self._remember(batch, _entries_of(batch, body))

    def _check_item(self, index: int, item: PutItem) -> int:
        """The item's shifted window, once every field is checked."""
        if not isinstance(item.record_id, bytes) or len(item.record_id) != RECORD_ID_LEN:
            raise ValueError(f"items[{index}].record_id: expected {RECORD_ID_LEN} bytes")
        if not isinstance(item.blob, bytes):
            raise ValueError(f"items[{index}].blob: expected bytes")
        if not isinstance(item.meta.dataset, str) or not item.meta.dataset:
            raise ValueError(f"items[{index}].meta.dataset: expected a non-empty string")
        for key in item.keys:
            if key.record_id != item.record_id:
                raise ValueError(f"items[{index}].keys: expected every key to name the item's record_id")
            if not isinstance(key.recipient, bytes) or not 1 <= len(key.recipient) <= MAX_RECIPIENT_BYTES:
                raise ValueError(f"items[{index}].keys.recipient: expected 1 to {MAX_RECIPIENT_BYTES} bytes")
            if not isinstance(key.enc, bytes) or not isinstance(key.ct, bytes):
                raise ValueError(f"items[{index}].keys: expected enc and ct as bytes")
        return _shift(item.meta.window_start_s, f"items[{index}].meta.window_start_s")

    def get(self, record_id: bytes) -> bytes | None:
        """A record's blob, or None."""
        if not isinstance(record_id, bytes) or len(record_id) != RECORD_ID_LEN:
            return None

        def read(entry: _Entry):
            blob = self._read(self._batch_key(entry.batch), entry.offset, entry.size) if entry.size else b""
            return _MOVED if blob is None else blob
        return self._at(record_id, read)

    def get_key(self, record_id: bytes, recipient: bytes) -> KeyBlob | None:
        """A record's data key wrapped for recipient, or None (never existed or destroyed)."""
        if not isinstance(recipient, bytes) or not 1 <= len(recipient) <= MAX_RECIPIENT_BYTES:
            return None
        if not isinstance(record_id, bytes) or len(record_id) != RECORD_ID_LEN:
            return None

        def read(entry: _Entry):
            body = self._read(self._keys_key(entry.batch)) if entry.batch.wraps else None
            if body is None:
                # Erased, or the batch was replaced by a delete: only the batch object's presence tells.
                there = self._request("head_object", missing=None, Key=self._batch_key(entry.batch))
                return None if there is not None else _MOVED
            return next((KeyBlob(record_id, recipient, enc, ct) for rid, who, enc, ct in _WRAPS.decode(body)
                         if rid == record_id and who == recipient), None)
        return self._at(record_id, read)

    def list(self, dataset: str, start_s: int, end_s: int, limit: int = MAX_LIST_RECORDS) -> list[bytes]:
        """Ids of the data set's records whose window starts in [start_s, end_s), oldest first."""
        if not 1 <= limit <= MAX_LIST_RECORDS:
            raise ValueError(f"limit: expected 1 to {MAX_LIST_RECORDS}, got {limit}")
        if start_s >= min(end_s, WINDOW_OFFSET) or end_s <= -WINDOW_OFFSET:
            return []  # an empty range, or one outside every 64-bit window start
        lo = max(start_s, -WINDOW_OFFSET) + WINDOW_OFFSET
        hi = min(end_s, WINDOW_OFFSET) + WINDOW_OFFSET - 1
        found: dict[bytes, int] = {}
        for chunk in _chunks(self._batches(_digest(dataset), lo, hi), S3_WORKERS):
            # Every batch from here on begins after chunk[0].last - span: records up to there are all found.
            if sum(1 for window in found.values() if window <= chunk[0].last - MAX_BATCH_SPAN_S) >= limit:
                break
            found.update((e.record_id, e.window) for e in self._entries(chunk) if lo <= e.window <= hi)
        return [record_id for window, record_id in sorted((w, r) for r, w in found.items())[:limit]]

    def delete(self, record_id: bytes) -> bool:
        """Remove a record and its keys: its batch is written again without it under a new name and the
        old objects deleted; then the backend purges their bytes."""
        if not isinstance(record_id, bytes) or len(record_id) != RECORD_ID_LEN:
            return False
        with self._writing:
            entry = self._at(record_id, lambda found: found)
            if entry is None:
                return False
            old = entry.batch
            body = self._read(self._batch_key(old))
            if body is None:
                self._forget(old)
                return self.delete(record_id)
            keys_body = self._read(self._keys_key(old)) if old.wraps else None
            wraps = [] if keys_body is None else _WRAPS.decode(keys_body)
            kept = [(e.window, PutItem(e.record_id, body[e.offset:e.offset + e.size], RecordMeta("", 0),
                                       [KeyBlob(*w) for w in wraps if w[0] == e.record_id]))
                    for e in _entries_of(old, body) if e.record_id != record_id]
            self._write(_pack(old.dataset, kept))
            self._delete_objects([self._batch_key(old)] + ([self._keys_key(old)] if keys_body is not None else []))
            self._forget(old)
        if self.on_delete is not None:
            self.on_delete(_needles(len(body)) + (_needles(len(keys_body)) if keys_body is not None else 0))
        return True

    def destroy_keys(self, dataset: str | None) -> int:
        """Delete every keys object of the data set (None: all), then have the backend purge them; the
        number of wraps destroyed (each object's name carries its count)."""
        prefix = f"{self.prefix}/k/" + ("" if dataset is None else _digest(dataset) + "/")
        with self._writing:
            objects = list(self._names(prefix))
            self._delete_objects([name for name, _ in objects])
        if self.on_delete is not None and objects:
            self.on_delete(sum(_needles(size) for _, size in objects))
        return sum(int(name.rpartition(".")[2]) for name, _ in objects)

    def _delete_objects(self, keys: list[str]) -> None:
        for start in range(0, len(keys), S3_DELETE_BATCH):
            batch = [{"Key": key} for key in keys[start:start + S3_DELETE_BATCH]]
            answer = self._request("delete_objects", Delete={"Objects": batch, "Quiet": True})
            if answer.get("Errors"):
                first = answer["Errors"][0]
                raise S3StoreError("vaults.endpoint", f"delete of {first.get('Key')} refused: {first.get('Code')}")

    def key_blobs(self) -> Iterator[KeyBlob]:
        """Every wrapped key the store holds, orphans of a crashed put included (one GET per keys object)."""
        bodies = _parallel(self._read, [name for name, _ in self._names(f"{self.prefix}/k/")])
        blobs = [KeyBlob(*wrap) for body in bodies if body is not None for wrap in _WRAPS.decode(body)]
        return iter(sorted(blobs, key=lambda blob: (blob.record_id, blob.recipient)))

    def close(self) -> None:
        """Nothing to release: the client is shared by every owner's store and closed by its backend."""


_MOVED = object()  # a read found the batch gone: look the record up again


def _chunks(batches: Iterator[_Batch], size: int) -> Iterator[list[_Batch]]:
    """Batches in lists of `size` (the last one shorter), fetched side by side by the caller."""
    chunk: list[_Batch] = []
    for batch in batches:
        chunk.append(batch)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _needles(size: int) -> int:
    """The needles SeaweedFS keeps an object of `size` bytes in (an empty one has none)."""
    return -(-size // SEAWEED_CHUNK_BYTES)


def _pack(dataset: str, records: list[tuple[int, PutItem]]) -> list[tuple[_Batch, bytes, bytes]]:
    """Records (shifted window, item), oldest first, as batches: (batch, batch object, keys object);
    a new batch starts where one would span MAX_BATCH_SPAN_S or pass MAX_BATCH_OBJECT_BYTES."""
    groups: list[list[tuple[int, PutItem]]] = []
    size = 0
    for window, item in records:
        if not groups or window - groups[-1][0][0] >= MAX_BATCH_SPAN_S or size + len(item.blob) > MAX_BATCH_OBJECT_BYTES:
            groups.append([])
            size = 0
        groups[-1].append((window, item))
        size += len(item.blob) + 64
    packed = []
    for group in groups:
        index = _ENCODER.encode([(item.record_id, window, len(item.blob)) for window, item in group])
        wraps = [(key.record_id, key.recipient, key.enc, key.ct) for _, item in group for key in item.keys]
        batch = _Batch(dataset, group[0][0], group[-1][0], secrets.token_hex(8), len(group), len(index), len(wraps))
        body = b"".join([index, *(item.blob for _, item in group)])
        packed.append((batch, body, _ENCODER.encode(wraps) if wraps else b""))
    return packed


def _entries_of(batch: _Batch, body: bytes) -> list[_Entry]:
    """The entries of a batch object's bytes (or of its index alone)."""
    entries, offset = [], batch.index_bytes
    for record_id, window, size in _INDEX.decode(body[:batch.index_bytes]):
        entries.append(_Entry(batch, record_id, window, offset, size))
        offset += size
    return entries
