"""The vault store on an S3-compatible object store (SeaweedFS, MinIO, AWS S3, ...), through boto3.

One owner's vault is a prefix of a shared bucket (the VaultHost names it by a digest of the owner):

    <prefix>/records/<record id hex>                              the sealed record (blob)
    <prefix>/keys/<data set digest>/<record id hex>.<n>           its n wrapped data keys, one object
    <prefix>/list/<data set digest>/<window start, 20 digits>/<record id hex>   empty: the commit mark

A record costs three PUTs (blob, keys, mark) and, per batch and data set, one LIST to skip what is
stored already; a read costs two GETs (blob, keys). The wraps of a record share one object because
they are only ever destroyed together (a data set's or the whole vault's, or the record's).

Only hex digits and fixed names reach a key, so no data set or owner text can form a path
(SeaweedFS maps keys to filer paths: a data set named ".." must not climb out of the prefix).
Data sets are named by a digest, which keeps every path part under SeaweedFS's 255-byte limit.

Durability and atomicity: put writes the blob and the keys first and the list mark last, all
before it returns, and a record counts as stored once its mark exists; a crash before the mark
leaves objects that nothing lists and that the next put overwrites with the same bytes. The server
must acknowledge a PUT only once it is durable: AWS S3 does; the project's SeaweedFS gets an fsync
rule on the bucket (seaweedfs.py).

Erasure: destroy_keys deletes the key objects, then calls `on_delete(count)`; with the project's
SeaweedFS that waits for the deletions to reach the volumes and vacuums them, so the bytes leave
the volume files. A versioned bucket would keep every deleted key as an old version: refused.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import boto3
import msgspec
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from .store import MAX_LIST_RECORDS, KeyBlob, PutItem, RecordMeta

if TYPE_CHECKING:
    from .seaweedfs import S3Credentials

RECORD_ID_LEN = 32
MAX_RECIPIENT_BYTES = 64  # a recipient key (X25519: 32 bytes) in hex stays a short path part
WINDOW_OFFSET = 2**63  # window starts are signed 64-bit; shifted to 0..2**64-1, 20 decimal digits
S3_WORKERS = 16  # concurrent S3 requests of one put_many (each request waits on the server's fsync)
S3_DELETE_BATCH = 1000  # keys one DeleteObjects request takes (the S3 API's limit)
S3_CONNECT_S = 5  # seconds to open a connection to the S3 endpoint
S3_READ_S = 60  # seconds to wait for an S3 answer
S3_ATTEMPTS = 5  # tries of one S3 request on a throttle or a 5xx (botocore's standard retry mode)
MAX_CACHED_DATASETS = 4096  # record id -> (data set, window, wraps) kept so get_key after get costs one request
MAX_LISTED_MARKS = 1000  # marks one existence check lists (one page, at most 2 per record + 16) before a HEAD each
_CREDENTIAL_ERRORS = ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken",
                      "ExpiredToken", "403")
_MISSING = ("404", "NoSuchKey", "NotFound")
_KEYBLOB = msgspec.msgpack.Encoder()
_WRAPS = msgspec.msgpack.Decoder(list[tuple[bytes, bytes, bytes]])  # [(recipient, enc, ct), ...]


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
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in _CREDENTIAL_ERRORS:
            return S3StoreError("vaults.credentials_file", f"the S3 server refused the credentials ({code})")
        if code in ("NoSuchBucket",):
            return S3StoreError("vaults.bucket", f"bucket {bucket!r} does not exist")
        return S3StoreError("vaults.endpoint", f"the S3 server answered {code}: {exc}")
    return S3StoreError("vaults.endpoint", f"S3 request failed: {exc}")


def open_bucket(client, bucket: str, create: bool) -> None:
    """Check the bucket is reachable with these credentials (created if allowed) and unversioned."""
    try:
        try:
            client.head_bucket(Bucket=bucket)
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) not in _MISSING:
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


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _window(window_start_s: int, field: str) -> str:
    if not isinstance(window_start_s, int) or not -WINDOW_OFFSET <= window_start_s < WINDOW_OFFSET:
        raise ValueError(f"{field}: expected a signed 64-bit integer")
    return f"{window_start_s + WINDOW_OFFSET:020d}"


class S3VaultStore:
    """One owner's records under `prefix` of `bucket`, through a shared boto3 client."""

    def __init__(self, client, bucket: str, prefix: str, on_delete: Callable[[int], None] | None = None) -> None:
        if not prefix or not all(c in "0123456789abcdef" for c in prefix):
            raise ValueError("prefix: expected lowercase hex digits (the VaultHost's digest of the owner)")
        self.client, self.bucket, self.prefix = client, bucket, prefix
        self.on_delete = on_delete
        self._datasets: OrderedDict[bytes, tuple[str, str, str]] = OrderedDict()  # id -> (data set, window, wraps)
        self._lock = threading.Lock()

    # -- object names -------------------------------------------------------------------------

    def _record_key(self, record_id: bytes) -> str:
        return f"{self.prefix}/records/{record_id.hex()}"

    def _keys_key(self, dataset_digest: str, record_id: bytes, wraps: int | str) -> str:
        return f"{self.prefix}/keys/{dataset_digest}/{record_id.hex()}.{wraps}"

    def _mark_key(self, meta: RecordMeta, record_id: bytes) -> str:
        return f"{self.prefix}/list/{_digest(meta.dataset)}/{_window(meta.window_start_s, 'meta.window_start_s')}/{record_id.hex()}"

    # -- requests -----------------------------------------------------------------------------

    def _call(self, method: str, **kwargs):
        try:
            return getattr(self.client, method)(Bucket=self.bucket, **kwargs)
        except (BotoCoreError, ClientError) as exc:
            raise explain(exc, self.bucket) from None

    def _exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
            return True
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in _MISSING:
                return False
            raise explain(exc, self.bucket) from None
        except BotoCoreError as exc:
            raise explain(exc, self.bucket) from None

    def _keys_under(self, prefix: str, start_after: str = "") -> Iterator[str]:
        """Every object key under prefix, in key order (pages of up to 1000)."""
        kwargs = {"Prefix": prefix, **({"StartAfter": start_after} if start_after else {})}
        while True:
            page = self._call("list_objects_v2", **kwargs)
            for entry in page.get("Contents", []):
                yield entry["Key"]
            if not page.get("IsTruncated"):
                return
            kwargs["ContinuationToken"] = page["NextContinuationToken"]

    def _parallel(self, fn, args: list) -> list:
        if len(args) <= 1:
            return [fn(arg) for arg in args]
        return list(_pool().map(fn, args))

    # -- the VaultStore interface ---------------------------------------------------------------

    def put(self, record_id: bytes, blob: bytes, meta: RecordMeta, keys: Sequence[KeyBlob]) -> bool:
        """Store a record and its keys durably; False if that record was already stored."""
        return self.put_many([PutItem(record_id, blob, meta, keys)]) == 1

    def put_many(self, items: Sequence[PutItem]) -> int:
        """Store several records: blobs and keys, then their list marks, all acknowledged before return."""
        marks = [self._check_item(index, item) for index, item in enumerate(items)]
        unique = list({item.record_id: (item, mark) for item, mark in zip(items, marks)}.values())
        stored = self._existing_marks([mark for _, mark in unique])
        fresh = [(item, mark) for item, mark in unique if mark not in stored]
        writes = []
        for item, _ in fresh:
            dataset = _digest(item.meta.dataset)
            meta = {"dataset-digest": dataset, "window": _window(item.meta.window_start_s, "meta"),
                    "wraps": str(len(item.keys))}
            writes.append((self._record_key(item.record_id), item.blob, meta))
            if item.keys:
                wraps = [(key.recipient, key.enc, key.ct) for key in item.keys]
                writes.append((self._keys_key(dataset, item.record_id, len(wraps)), _KEYBLOB.encode(wraps), {}))
        self._parallel(lambda w: self._call("put_object", Key=w[0], Body=w[1], Metadata=w[2]), writes)
        # The marks go last: a record is listed, and counts as stored, only once all of it is durable.
        self._parallel(lambda pair: self._call("put_object", Key=pair[1], Body=b""), fresh)
        return len(fresh)

    def _existing_marks(self, marks: list[str]) -> set[str]:
        """Which of these marks exist: per data set one LIST over the batch's windows (a page of
        MAX_LISTED_MARKS), and a HEAD for any mark past what that page reached."""
        found: set[str] = set()
        by_dataset: dict[str, list[str]] = {}
        for mark in marks:
            by_dataset.setdefault(mark[:mark.rindex("/", 0, mark.rindex("/")) + 1], []).append(mark)
        unresolved: list[str] = []
        for base, group in by_dataset.items():
            group.sort()
            first_window = group[0][len(base):].partition("/")[0]
            page = self._call("list_objects_v2", Prefix=base, StartAfter=base + first_window + "/",
                              MaxKeys=min(MAX_LISTED_MARKS, 2 * len(group) + 16))
            listed = {entry["Key"] for entry in page.get("Contents", [])}
            reached = max(listed) if page.get("IsTruncated") and listed else None
            found |= listed & set(group)
            unresolved += [mark for mark in group if reached is not None and mark > reached]
        exists = self._parallel(self._exists, unresolved)
        return found | {mark for mark, there in zip(unresolved, exists) if there}

    def _check_item(self, index: int, item: PutItem) -> str:
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
        return self._mark_key(item.meta, item.record_id)

    def get(self, record_id: bytes) -> bytes | None:
        """A record's blob, or None."""
        if not isinstance(record_id, bytes) or len(record_id) != RECORD_ID_LEN:
            return None
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._record_key(record_id))
            blob = response["Body"].read()
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in _MISSING:
                return None
            raise explain(exc, self.bucket) from None
        except BotoCoreError as exc:
            raise explain(exc, self.bucket) from None
        self._remember(record_id, response.get("Metadata", {}))
        return blob

    def _remember(self, record_id: bytes, metadata: dict) -> tuple[str, str, str]:
        found = (metadata.get("dataset-digest", ""), metadata.get("window", ""), metadata.get("wraps", ""))
        with self._lock:
            self._datasets[record_id] = found
            self._datasets.move_to_end(record_id)
            while len(self._datasets) > MAX_CACHED_DATASETS:
                self._datasets.popitem(last=False)
        return found

    def _placed(self, record_id: bytes) -> tuple[str, str, str] | None:
        """A stored record's (data set digest, window, wrap count) from its blob's metadata (cached
        from get, else one HEAD), or None."""
        if not isinstance(record_id, bytes) or len(record_id) != RECORD_ID_LEN:
            return None
        with self._lock:
            cached = self._datasets.get(record_id)
        if cached and all(cached):
            return cached
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._record_key(record_id))
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in _MISSING:
                return None
            raise explain(exc, self.bucket) from None
        except BotoCoreError as exc:
            raise explain(exc, self.bucket) from None
        placed = self._remember(record_id, head.get("Metadata", {}))
        return placed if all(placed) else None

    def get_key(self, record_id: bytes, recipient: bytes) -> KeyBlob | None:
        """A record's data key wrapped for recipient, or None (never existed or destroyed)."""
        if not isinstance(recipient, bytes) or not 1 <= len(recipient) <= MAX_RECIPIENT_BYTES:
            return None
        placed = self._placed(record_id)
        if placed is None or placed[2] in ("", "0"):
            return None
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._keys_key(placed[0], record_id, placed[2]))["Body"].read()
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in _MISSING:
                return None
            raise explain(exc, self.bucket) from None
        except BotoCoreError as exc:
            raise explain(exc, self.bucket) from None
        for who, enc, ct in _WRAPS.decode(body):
            if who == recipient:
                return KeyBlob(record_id, recipient, enc, ct)
        return None

    def list(self, dataset: str, start_s: int, end_s: int, limit: int = MAX_LIST_RECORDS) -> list[bytes]:
        """Ids of the data set's records whose window starts in [start_s, end_s), oldest first."""
        if not 1 <= limit <= MAX_LIST_RECORDS:
            raise ValueError(f"limit: expected 1 to {MAX_LIST_RECORDS}, got {limit}")
        if start_s >= min(end_s, WINDOW_OFFSET):
            return []  # an empty range, or one past every 64-bit window start
        start = max(-WINDOW_OFFSET, start_s)
        base = f"{self.prefix}/list/{_digest(dataset)}/"
        ids: list[bytes] = []
        for key in self._keys_under(base, start_after=base + _window(start, "start_s") + "/"):
            window, _, hex_id = key[len(base):].partition("/")
            if int(window) - WINDOW_OFFSET >= end_s or len(ids) >= limit:
                break
            ids.append(bytes.fromhex(hex_id))
        return ids

    def delete(self, record_id: bytes) -> bool:
        """Remove a record and its keys (the mark first, so it is never listed half-deleted), then have
        the backend purge their bytes."""
        with self._lock:
            self._datasets.pop(record_id, None)
        placed = self._placed(record_id)  # a fresh HEAD: the blob's size is needed below
        if placed is None:
            return False
        dataset, window, _ = placed
        keys = list(self._keys_under(f"{self.prefix}/keys/{dataset}/{record_id.hex()}."))
        blob_bytes = self._call("head_object", Key=self._record_key(record_id))["ContentLength"]
        self._delete_keys([f"{self.prefix}/list/{dataset}/{window}/{record_id.hex()}"])
        self._delete_keys(keys)
        self._delete_keys([self._record_key(record_id)])
        with self._lock:
            self._datasets.pop(record_id, None)
        # The mark is empty (SeaweedFS stores no bytes for it); keys and a non-empty blob are one needle each.
        needles = len(keys) + (1 if blob_bytes else 0)
        if self.on_delete is not None and needles:
            self.on_delete(needles)
        return True

    def destroy_keys(self, dataset: str | None) -> int:
        """Delete every wrapped key of the data set (None: all), then have the backend purge them;
        the number of wraps destroyed (each object's name carries its count)."""
        prefix = f"{self.prefix}/keys/" + ("" if dataset is None else _digest(dataset) + "/")
        objects = list(self._keys_under(prefix))
        self._delete_keys(objects)
        if self.on_delete is not None and objects:
            self.on_delete(len(objects))
        return sum(int(name.rpartition(".")[2]) for name in objects)

    def _delete_keys(self, keys: list[str]) -> int:
        for start in range(0, len(keys), S3_DELETE_BATCH):
            batch = [{"Key": key} for key in keys[start:start + S3_DELETE_BATCH]]
            answer = self._call("delete_objects", Delete={"Objects": batch, "Quiet": True})
            if answer.get("Errors"):
                first = answer["Errors"][0]
                raise S3StoreError("vaults.endpoint", f"delete of {first.get('Key')} refused: {first.get('Code')}")
        return len(keys)

    def key_blobs(self) -> Iterator[KeyBlob]:
        """Every wrapped key the store holds (one GET per record: for audits and tests)."""
        blobs = []
        for name in self._keys_under(f"{self.prefix}/keys/"):
            record_id = bytes.fromhex(name.rpartition("/")[2].partition(".")[0])
            body = self._call("get_object", Key=name)["Body"].read()
            blobs += [KeyBlob(record_id, who, enc, ct) for who, enc, ct in _WRAPS.decode(body)]
        return iter(sorted(blobs, key=lambda blob: (blob.record_id, blob.recipient)))

    def close(self) -> None:
        """Nothing to release: the client is shared by every owner's store and closed by its backend."""
