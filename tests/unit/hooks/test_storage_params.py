"""Storage connections become smart_open transport parameters (hooks/storage_params.py):
the SDK clients are built from real Airflow ``Connection`` objects in memory, and reach the
endpoint, region, project or account the connection names. Building a client opens no
network connection, so no store is needed."""

from __future__ import annotations

import json
from typing import Any

import pytest
from airflow.sdk import Connection

from airflow_provider_zenmigrate.hooks.storage_params import transport_params


def conn(conn_type: str, extra: dict[str, Any] | None = None, **fields: Any) -> Connection:
    body = {"conn_type": conn_type, "extra": extra or {}, **fields}
    return Connection.from_json(json.dumps(body), conn_id="zm_store")


@pytest.mark.parametrize(
    ("extra", "endpoint", "region"),
    [
        ({"endpoint_url": "http://127.0.0.1:9000", "region_name": "eu-west-3"}, 9000, "eu-west-3"),
        ({"service_config": {"s3": {"endpoint_url": "http://127.0.0.1:9001"}}}, 9001, None),
        ({"extra__aws__endpoint_url": "http://127.0.0.1:9002"}, 9002, None),  # the old prefix
    ],
)
def test_s3_client_reaches_the_connections_endpoint(
    extra: dict[str, Any], endpoint: int, region: str | None
) -> None:
    params = transport_params(conn("aws", extra, login="AKIAEXAMPLE", password="secret"))
    client = params["client"]
    assert client.meta.endpoint_url == f"http://127.0.0.1:{endpoint}"
    if region is not None:
        assert client.meta.region_name == region
    assert "min_part_size" not in params


def test_s3_part_size_comes_from_the_extra() -> None:
    params = transport_params(conn("aws", {"min_part_size": "6000000"}))
    assert params["min_part_size"] == 6_000_000


def test_gcs_emulator_endpoint_uses_anonymous_credentials() -> None:
    extra = {"endpoint_url": "http://127.0.0.1:9023", "project": "zm-project"}
    client = transport_params(conn("google_cloud_platform", extra))["client"]
    assert client.project == "zm-project"
    assert type(client._credentials).__name__ == "AnonymousCredentials"


def test_azure_from_a_connection_string() -> None:
    string = (
        "DefaultEndpointsProtocol=http;AccountName=devacct;AccountKey=a2V5;"
        "BlobEndpoint=http://127.0.0.1:10000/devacct;"
    )
    client = transport_params(conn("wasb", {"connection_string": string}))["client"]
    assert client.account_name == "devacct"
    assert client.url == "http://127.0.0.1:10000/devacct/"


def test_azure_from_account_name_and_key() -> None:
    client = transport_params(conn("wasb", login="acct", password="a2V5"))["client"]
    assert client.account_name == "acct"
    assert client.url == "https://acct.blob.core.windows.net/"


@pytest.mark.parametrize("conn_type", ["sftp", "mysql", ""])
def test_other_connection_types_are_refused(conn_type: str) -> None:
    with pytest.raises(ValueError, match="use aws, google_cloud_platform or wasb"):
        transport_params(conn(conn_type))
