"""Turn an Airflow storage connection into smart_open transport parameters.

Works with the connection types users already have (``aws``, ``google_cloud_platform``,
``wasb``) without the Airflow provider packages that define them: only the connection's
fields are read and the cloud SDKs that smart_open uses are called directly.

Extras understood:

- ``aws``: ``region_name``, ``endpoint_url`` (S3-compatible stores; also read from
  ``service_config.s3.endpoint_url``), ``aws_session_token``; login/password are the key
  id and secret. ``min_part_size`` sets the multipart part size in bytes.
- ``google_cloud_platform``: ``key_path`` or ``keyfile_dict`` (service account),
  ``project``, ``endpoint_url`` (an emulator; anonymous credentials then).
- ``wasb``: ``connection_string``, or login (account name) and password (account key)
  with ``account_url`` (or host); ``sas_token``.
"""

from __future__ import annotations

import json
from typing import Any

from ..core.storage.sdks import require_scheme_sdk
from .database_settings import ConnectionFields


def _extra(conn: ConnectionFields, key: str) -> Any:
    """An extra by its plain name or the old ``extra__<type>__<name>`` prefixed one."""
    extra = conn.extra_dejson or {}
    return extra.get(key) or extra.get(f"extra__{conn.conn_type}__{key}")


def _described(conn: ConnectionFields) -> str:
    return f"a storage connection of type {conn.conn_type!r}"


def transport_params(conn: ConnectionFields) -> dict[str, Any]:
    """smart_open's ``transport_params`` (a ready client) for an object-store connection."""
    conn_type = (conn.conn_type or "").lower()
    if conn_type in ("aws", "s3"):
        return _s3(conn)
    if conn_type in ("google_cloud_platform", "gcp", "gcs"):
        return _gcs(conn)
    if conn_type in ("wasb", "azure_blob", "azure"):
        return _azure(conn)
    raise ValueError(
        f"storage connection type {conn.conn_type!r} is not supported "
        "(use aws, google_cloud_platform or wasb)"
    )


def _s3(conn: ConnectionFields) -> dict[str, Any]:
    require_scheme_sdk("s3", _described(conn))
    import boto3

    service = _extra(conn, "service_config") or {}
    endpoint = _extra(conn, "endpoint_url") or (service.get("s3") or {}).get("endpoint_url")
    kwargs: dict[str, Any] = {
        "aws_access_key_id": conn.login or None,
        "aws_secret_access_key": conn.password or None,
        "aws_session_token": _extra(conn, "aws_session_token"),
        "region_name": _extra(conn, "region_name"),
        "endpoint_url": endpoint,
    }
    client = boto3.client("s3", **{k: v for k, v in kwargs.items() if v})
    params: dict[str, Any] = {"client": client}
    if _extra(conn, "min_part_size"):
        params["min_part_size"] = int(_extra(conn, "min_part_size"))
    return params


def _gcs(conn: ConnectionFields) -> dict[str, Any]:
    require_scheme_sdk("gs", _described(conn))
    from google.cloud import storage

    project = _extra(conn, "project") or _extra(conn, "project_id")
    endpoint = _extra(conn, "endpoint_url")
    if endpoint:
        from google.auth.credentials import AnonymousCredentials

        client = storage.Client(
            project=project or "emulator",
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": endpoint},
        )
    elif _extra(conn, "keyfile_dict"):
        info = _extra(conn, "keyfile_dict")
        info = json.loads(info) if isinstance(info, str) else info
        client = storage.Client.from_service_account_info(info, project=project)
    elif _extra(conn, "key_path"):
        client = storage.Client.from_service_account_json(_extra(conn, "key_path"), project=project)
    else:
        client = storage.Client(project=project)
    return {"client": client}


def _azure(conn: ConnectionFields) -> dict[str, Any]:
    require_scheme_sdk("azure", _described(conn))
    from azure.storage.blob import BlobServiceClient

    connection_string = _extra(conn, "connection_string")
    if connection_string:
        return {"client": BlobServiceClient.from_connection_string(connection_string)}
    account_url = _extra(conn, "account_url") or conn.host
    if not account_url:
        account_url = f"https://{conn.login}.blob.core.windows.net"
    credential: Any = _extra(conn, "sas_token")
    if not credential and conn.login and conn.password:
        credential = {"account_name": conn.login, "account_key": conn.password}
    return {"client": BlobServiceClient(account_url=account_url, credential=credential)}
