"""S3, GCS and Azure Blob: the client each uses, and the listing, stat and delete calls
smart_open does not offer. Each SDK is imported only here and only when its store is used
(see :mod:`.sdks`).

How each publishes only when complete: S3 uses a multipart upload completed on success and
aborted on error; GCS a resumable upload finalised only by its last chunk (cancelled on
error); Azure stages blocks that become the blob only when the block list is committed
(dropped on error). A process killed with SIGKILL therefore never commits: it leaves an
incomplete multipart upload, resumable session or uncommitted blocks, all invisible to
readers and expired by the store (configure a bucket lifecycle rule
``AbortIncompleteMultipartUpload`` on S3 to reclaim the space).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import suppress
from typing import IO, Any

from ..errors import StorageError
from .base import Backend, ObjectInfo
from .failures import is_not_found
from .locations import Location
from .sdks import import_smart_open

# Resumable uploads need chunks in multiples of 256 KiB.
_GCS_CHUNK = 256 * 1024
# The GCS client reads 40 MiB windows by default; a smaller one bounds memory.
_GCS_READ_CHUNK = 8 * 1024 * 1024


class S3Backend(Backend):
    """S3 and S3-compatible stores (MinIO, Ceph, ...): the caller's client, else boto3's
    default chain with the endpoint from ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL``
    and any credentials in the URI (``s3://KEY:SECRET@bucket/key``)."""

    def __init__(self, location: Location, transport_params: dict[str, Any] | None) -> None:
        super().__init__(location, transport_params)
        if self.client is None:
            import boto3

            endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
            kwargs: dict[str, Any] = {"endpoint_url": endpoint or None}
            if location.credentials is not None:
                kwargs["aws_access_key_id"], kwargs["aws_secret_access_key"] = location.credentials
            self.client = boto3.session.Session().client("s3", **kwargs)

    def stat(self, key: str) -> ObjectInfo | None:
        try:
            head = self.client.head_object(Bucket=self.location.bucket, Key=key)
        except Exception as exc:
            if is_not_found(exc):
                return None
            raise
        return ObjectInfo(key, int(head["ContentLength"]), head.get("LastModified"))

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.location.bucket, Prefix=prefix
        )
        for page in pages:
            for item in page.get("Contents", []):
                yield ObjectInfo(item["Key"], int(item["Size"]), item.get("LastModified"))

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.location.bucket, Key=key)

    def abort_uploads(self, prefix: str) -> None:
        """Abort the multipart uploads under ``prefix``: their parts are stored (and billed)
        until aborted or expired by a lifecycle rule."""
        pages = self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.location.bucket, Prefix=prefix
        )
        for page in pages:
            for upload in page.get("Uploads", []):
                self.client.abort_multipart_upload(
                    Bucket=self.location.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                )


class GCSBackend(Backend):
    """Google Cloud Storage: the caller's client, else google-auth's application default
    credentials (the client library honours ``STORAGE_EMULATOR_HOST``)."""

    def __init__(self, location: Location, transport_params: dict[str, Any] | None) -> None:
        super().__init__(location, transport_params)
        self.part_size = -(-self.part_size // _GCS_CHUNK) * _GCS_CHUNK
        if self.client is None:
            from google.cloud import storage

            self.client = storage.Client()

    def open_reader(self, key: str) -> IO[bytes]:
        read_kwargs = {"chunk_size": _GCS_READ_CHUNK, **self.extra.get("blob_open_kwargs", {})}
        params = {"client": self.client, **self.extra, "blob_open_kwargs": read_kwargs}
        stream: IO[bytes] = import_smart_open().open(
            self.location.with_key(key), "rb", compression="disable", transport_params=params
        )
        return stream

    def stat(self, key: str) -> ObjectInfo | None:
        blob = self.client.bucket(self.location.bucket).get_blob(key)
        if blob is None:
            return None
        return ObjectInfo(key, int(blob.size), blob.updated)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        for blob in self.client.list_blobs(self.location.bucket, prefix=prefix):
            yield ObjectInfo(blob.name, int(blob.size), blob.updated)

    def delete(self, key: str) -> None:
        self.client.bucket(self.location.bucket).blob(key).delete()


class AzureBackend(Backend):
    """Azure Blob Storage: the caller's ``BlobServiceClient`` or ``ContainerClient``, else
    one built from the environment (:func:`_azure_client_from_environment`)."""

    def __init__(self, location: Location, transport_params: dict[str, Any] | None) -> None:
        super().__init__(location, transport_params)
        if self.client is None:
            self.client = _azure_client_from_environment()

    def open_writer(self, key: str) -> Any:
        params = self.smart_open_params()
        params["client"] = self._container()
        return import_smart_open().open(
            self.location.with_key(key), "wb", compression="disable", transport_params=params
        )

    def _container(self) -> Any:
        if hasattr(self.client, "get_container_client"):
            return self.client.get_container_client(self.location.bucket)
        return self.client

    def stat(self, key: str) -> ObjectInfo | None:
        try:
            props = self._container().get_blob_client(key).get_blob_properties()
        except Exception as exc:
            if is_not_found(exc):
                return None
            raise
        return ObjectInfo(key, int(props.size), props.last_modified)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        for blob in self._container().list_blobs(name_starts_with=prefix):
            yield ObjectInfo(blob.name, int(blob.size), blob.last_modified)

    def delete(self, key: str) -> None:
        self._container().delete_blob(key)


def _azure_client_from_environment() -> Any:
    """``AZURE_STORAGE_CONNECTION_STRING``, else ``AZURE_STORAGE_ACCOUNT_URL`` (or
    ``AZURE_STORAGE_ACCOUNT``) with ``AZURE_STORAGE_KEY`` / ``AZURE_STORAGE_SAS_TOKEN`` or
    azure-identity's ``DefaultAzureCredential``."""
    from azure.storage.blob import BlobServiceClient

    connection_string = os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
    if connection_string:
        return BlobServiceClient.from_connection_string(connection_string)
    account = os.environ.get("AZURE_STORAGE_ACCOUNT")
    url = os.environ.get("AZURE_STORAGE_ACCOUNT_URL") or (
        f"https://{account}.blob.core.windows.net" if account else None
    )
    if not url:
        raise StorageError(
            "no Azure client: pass transport_params={'client': ...} or set "
            "AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_ACCOUNT_URL"
        )
    credential: Any = os.environ.get("AZURE_STORAGE_SAS_TOKEN")
    key = os.environ.get("AZURE_STORAGE_KEY")
    if key and account:
        credential = {"account_name": account, "account_key": key}
    if credential is None:
        try:
            from azure.identity import DefaultAzureCredential
        except ImportError:
            raise StorageError(
                "no Azure credential: set AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN, "
                "or install azure-identity for DefaultAzureCredential"
            ) from None
        credential = DefaultAzureCredential()
    return BlobServiceClient(account_url=url, credential=credential)


def drop_idle_connections(client: Any) -> None:
    """Close the idle pooled connections of a store client (boto3, google-cloud-storage,
    azure-storage-blob) before the process forks, so that no two processes ever write to
    one inherited socket; each client opens new ones when next used. Best effort: a client
    of another shape is left as it is."""
    sessions = [
        getattr(getattr(client, "_endpoint", None), "http_session", None),  # botocore
        getattr(client, "_http", None),  # google-cloud-storage (a requests session)
        getattr(getattr(getattr(client, "_pipeline", None), "_transport", None), "session", None),
    ]
    for session in sessions:
        close = getattr(session, "close", None)
        if callable(close):
            with suppress(Exception):  # a client that cannot: it opens new ones anyway
                close()
