"""Where dumps live: local files and S3, GCS and Azure Blob objects, opened as streams.

Every location is a URI (or a plain local path): ``/path``, ``file:///path``,
``s3://bucket/key``, ``gs://bucket/key`` (or ``gcs://``) and ``azure://container/blob``.
Compression is chosen by the suffix (``.gz``, ``.zst``, anything else is stored as is).
Object stores go through smart_open; local files are opened directly.

Published only when complete
    :func:`open_for_write` makes the object visible at its final name only when the block
    finished without error: a local file is written under a temporary name, fsynced and
    renamed (:mod:`.local`); an object store's upload is committed only then and aborted
    otherwise (:mod:`.clouds`).

Clients and credentials, in this order
    1. ``transport_params["client"]`` given by the caller (a boto3 S3 client, a
       ``google.cloud.storage.Client``, an Azure ``BlobServiceClient`` or
       ``ContainerClient``); for S3 also credentials in the URI (``s3://KEY:SECRET@bucket/k``).
    2. The provider's standard environment and default chains (:mod:`.clouds`).

    Other ``transport_params`` keys go to smart_open unchanged; ``min_part_size`` sets the
    multipart part size (default :data:`DEFAULT_PART_SIZE`; S3 needs at least 5 MiB, GCS a
    multiple of 256 KiB, which we round up to). GCS reads 8 MiB windows (the client's
    default is 40 MiB; ``blob_open_kwargs={"chunk_size": ...}`` changes it).

Encrypted dumps (:mod:`..crypto`)
    :func:`open_for_write` and :func:`open_for_read` take ``encryption``: written, a dump is
    compressed, then encrypted; read, an encrypted dump is recognised by its first bytes
    and decrypted before it is decompressed. ``authenticate_first`` authenticates every
    segment before the stream is handed out (restores use it).

Each store's SDK is an install extra (``[s3]``, ``[gcs]``, ``[azure]``, ``[all]``); a location
whose SDK is missing fails with a message naming the extra (:mod:`.sdks`). Errors name the
location through :func:`safe_uri` (no user information, no query) and carry a scrubbed
message of the cause, never the cause itself, so no secret reaches a log line.

Modules: :mod:`.locations` (URIs, scrubbing), :mod:`.compression`, :mod:`.failures`
(backend errors to storage errors), :mod:`.base`, :mod:`.local` and :mod:`.clouds` (the
stores), :mod:`.backends` (scheme to store), :mod:`.streams` (open for write and read),
:mod:`.sdks` (the optional SDKs).
"""

from __future__ import annotations

from ..errors import StorageError, StorageNotFoundError
from .backends import backend_for
from .base import DEFAULT_PART_SIZE, Backend, ObjectInfo
from .clouds import drop_idle_connections
from .compression import COMPRESSIONS, compression_for
from .failures import translated_errors
from .local import fsync_path
from .locations import Location, parse_location, safe_uri, scrub
from .streams import authenticated, envelope_at, open_for_read, open_for_write

__all__ = [
    "authenticated",
    "COMPRESSIONS",
    "DEFAULT_PART_SIZE",
    "Backend",
    "Location",
    "ObjectInfo",
    "StorageError",
    "StorageNotFoundError",
    "backend_for",
    "compression_for",
    "drop_idle_connections",
    "envelope_at",
    "fsync_path",
    "open_for_read",
    "open_for_write",
    "parse_location",
    "safe_uri",
    "scrub",
    "translated_errors",
]
