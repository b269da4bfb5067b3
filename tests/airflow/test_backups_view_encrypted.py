"""The "Backups" view with encrypted dumps (issue 26): a database entry of the Variable names
the connection holding the key (``encryption_conn_id``). Through Airflow's own API server app
and metadata database (tests/support/backups_view.py), with real encrypted dumps of a SQLite
database on disk (a single stream) and in S3 (moto's server; a multi-part dump).

- with the key: listed, inspected and verified as a plaintext dump is (verify authenticates
  every segment: a dump with one flipped byte fails);
- without it: the envelope's header only, and Verify answers "cannot verify without the key";
- with another key: a message naming the dump's key id (and the configured key's id);
- the key (raw, hex, base64) and the dump's data key are in no answer, log line or audit log
  entry.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from airflow_provider_zenmigrate.core.alembic import Alembic
from airflow_provider_zenmigrate.core.crypto import Encryption, LocalKey
from airflow_provider_zenmigrate.core.errors import SettingsError
from airflow_provider_zenmigrate.core.parts.reading import manifest_envelope
from airflow_provider_zenmigrate.core.storage import envelope_at, safe_uri
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from airflow_provider_zenmigrate.plugins.settings import parse_settings
from tests.support.backups_view import SIMPLE_AUTH_MANAGER, ViewClient, environment, view_client
from tests.support.example_dags import connection_json
from tests.support.object_stores import BUCKET, S3_ACCESS_KEY, S3_SECRET_KEY, s3_client
from tests.support.paths import EXAMPLE_MIGRATIONS

pytest_plugins = ["tests.support.object_stores"]

KEYED, NO_KEY, WRONG_KEY, BROKEN_KEY, S3 = (
    "zmvk_keyed",
    "zmvk_nokey",
    "zmvk_wrongkey",
    "zmvk_brokenkey",
    "zmvk_s3",
)


@dataclass
class Setup:
    view: ViewClient
    prefix: str
    tampered_prefix: str
    s3_prefix: str
    plain: str
    encrypted: str
    tampered: str
    multipart: str
    key: bytes
    other_key: bytes
    #: What must appear nowhere: both keys and the dumps' data keys (and their wrapped forms),
    #: each raw, hex and base64.
    secrets: list[bytes]
    key_id: str
    other_key_id: str


def _forms(raw: bytes) -> list[bytes]:
    return [
        raw,
        raw.hex().encode(),
        base64.b64encode(raw),
        base64.b64encode(raw).rstrip(b"="),
        base64.urlsafe_b64encode(raw).rstrip(b"="),
    ]


def _flip_a_byte(source: Path, target: Path) -> None:
    """A copy of the encrypted dump ``source`` (with its manifest) whose middle byte is
    changed: the same size, so the listing still trusts its manifest."""
    data = bytearray(source.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    shutil.copyfile(str(source) + ".manifest.json", str(target) + ".manifest.json")


@pytest.fixture(scope="module")
def setup(
    airflow_db: Path, tmp_path_factory: pytest.TempPathFactory, s3_server: str
) -> Iterator[Setup]:
    folder = tmp_path_factory.mktemp("zmvk_view")
    source = folder / "zmvk_source.db"
    url = make_url(f"sqlite:///{source}")
    plain_utils = MigrationUtils(url=url, connect_args={}, engine_args={})
    Alembic(plain_utils.engine, script_location=EXAMPLE_MIGRATIONS).upgrade("0002a")
    with plain_utils.engine.begin() as conn:
        conn.execute(text("INSERT INTO author (id, name) VALUES (1, 'Ada'), (2, 'Grace')"))
    key, other_key = os.urandom(32), os.urandom(32)
    encryption = Encryption(LocalKey(key))
    keyed_utils = MigrationUtils(url=url, connect_args={}, engine_args={}, encryption=encryption)
    backups, tampered_folder = folder / "backups", folder / "tampered"
    tampered_folder.mkdir()
    plain = str(backups / "plain.jsonl.zst")
    plain_utils.backup_database_to_file(plain)
    time.sleep(0.02)  # distinct modification times: the listing is newest first
    encrypted = str(backups / "sealed.jsonl.zst")
    keyed_utils.backup_database_to_file(encrypted)
    tampered = str(tampered_folder / "sealed-tampered.jsonl.zst")
    _flip_a_byte(Path(encrypted), Path(tampered))
    s3_prefix = f"s3://{BUCKET}/zmvk-{secrets.token_hex(4)}/"
    s3_params = {"client": s3_client(s3_server)}
    multipart = s3_prefix + "sealed-parts"
    MigrationUtils(
        url=url, connect_args={}, engine_args={}, transport_params=s3_params, encryption=encryption
    ).backup_database_to_file(multipart, jobs=2)
    # The dumps' own data keys, unwrapped here only to make sure they are never sent.
    data_keys = []
    for envelope in (envelope_at(encrypted), manifest_envelope(multipart, s3_params)):
        assert envelope is not None
        data_keys.append(LocalKey(key).unwrap(envelope.key))
        data_keys.append(envelope.key.wrapped)  # not secret, but not the page's either
    plain_utils.dispose()
    keyed_utils.dispose()
    local = [str(backups) + "/", str(tampered_folder) + "/"]
    config = {
        KEYED: {"encryption_conn_id": "zmvk_key", "prefixes": local},
        NO_KEY: local,
        WRONG_KEY: {"encryption_conn_id": "zmvk_other_key", "prefixes": local},
        BROKEN_KEY: {"encryption_conn_id": "zmvk_no_such_key", "prefixes": local},
        S3: {
            "storage_conn_id": "zmvk_store",
            "encryption_conn_id": "zmvk_key",
            "prefixes": [s3_prefix],
        },
    }
    env = {
        "AIRFLOW_VAR_ZENMIGRATE_BACKUP_PREFIXES": json.dumps(config),
        **{f"AIRFLOW_CONN_{c.upper()}": connection_json(plain_utils) for c in config},
        "AIRFLOW_CONN_ZMVK_KEY": json.dumps(
            {"conn_type": "generic", "password": base64.b64encode(key).decode()}
        ),
        "AIRFLOW_CONN_ZMVK_OTHER_KEY": json.dumps(
            {"conn_type": "generic", "password": base64.b64encode(other_key).decode()}
        ),
        "AIRFLOW_CONN_ZMVK_STORE": json.dumps(
            {
                "conn_type": "aws",
                "login": S3_ACCESS_KEY,
                "password": S3_SECRET_KEY,
                "extra": {"endpoint_url": s3_server, "region_name": "us-east-1"},
            }
        ),
        "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
    }
    with environment(env), view_client("zmvk") as view:
        yield Setup(
            view=view,
            prefix=local[0],
            tampered_prefix=local[1],
            s3_prefix=s3_prefix,
            plain=plain,
            encrypted=encrypted,
            tampered=tampered,
            multipart=multipart,
            key=key,
            other_key=other_key,
            secrets=[form for raw in (key, other_key, *data_keys) for form in _forms(raw)],
            key_id=LocalKey(key).key_id,
            other_key_id=LocalKey(other_key).key_id,
        )


def _rows(s: Setup, conn_id: str, prefix: str | None = None) -> dict[str, dict[str, Any]]:
    response = s.view.get("/api/backups", conn_id=conn_id, prefix=prefix or s.prefix, limit=100)
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["error"] is None, page
    return {row["uri"]: row for row in page["backups"]}


def _verification(s: Setup, conn_id: str, uri: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = s.view.get("/api/backup", conn_id=conn_id, uri=uri).json()["backup"]
        state = (found["verification"] or {}).get("state")
        if state in ("ok", "failed"):
            return dict(found["verification"])
        time.sleep(0.2)
    raise AssertionError(f"no verification of {uri} within 60 s")


# -- the Variable ------------------------------------------------------------------------------


def test_the_variable_takes_an_encryption_connection_per_database() -> None:
    found = parse_settings(
        json.dumps(
            {
                "a": {"encryption_conn_id": "backups_key", "prefixes": ["/srv/a/"]},
                "b": {"encryption_conn_id": None, "prefixes": ["/srv/b/"]},
                "c": ["/srv/c/"],
            }
        )
    )
    assert found["a"].encryption_conn_id == "backups_key"
    assert found["b"].encryption_conn_id is None and found["c"].encryption_conn_id is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (42, "must be the id of an Airflow connection"),
        ("", "must be the id of an Airflow connection"),
        ("two words", "must be the id of an Airflow connection"),
        (["k"], "not list"),
    ],
)
def test_a_bad_encryption_conn_id_is_a_clear_error(value: Any, expected: str) -> None:
    raw = json.dumps({"db": {"encryption_conn_id": value, "prefixes": ["/srv/db/"]}})
    with pytest.raises(SettingsError, match=expected) as caught:
        parse_settings(raw)
    assert "'db'" in str(caught.value) and "encryption_conn_id" in str(caught.value)


def test_a_key_pasted_as_the_connection_id_is_refused_without_repeating_it() -> None:
    pasted = base64.b64encode(os.urandom(32)).decode()
    raw = json.dumps({"db": {"encryption_conn_id": pasted, "prefixes": ["/srv/db/"]}})
    with pytest.raises(SettingsError, match="the connection holds the key") as caught:
        parse_settings(raw)
    assert pasted not in str(caught.value) and pasted.rstrip("=") not in str(caught.value)


def test_a_misspelt_key_of_an_entry_is_refused() -> None:
    raw = json.dumps({"db": {"encryption_conn": "k", "prefixes": ["/srv/db/"]}})
    with pytest.raises(SettingsError, match="unknown key.*'encryption_conn'.*encryption_conn_id"):
        parse_settings(raw)


# -- with the key --------------------------------------------------------------------------------


def test_with_the_key_an_encrypted_dump_is_listed_like_a_plaintext_one(setup: Setup) -> None:
    rows = _rows(setup, KEYED)
    plain, sealed = rows[setup.plain], rows[setup.encrypted]
    assert plain["encrypted"] is False and sealed["encrypted"] is True
    assert sealed["key_id"] == setup.key_id and sealed["locked"] is False
    assert sealed["key_problem"] is None
    for field in ("tables", "rows", "revision", "database", "dialect"):
        assert sealed[field] == plain[field], field
    assert sealed["tables"] >= 2 and sealed["rows"] >= 3 and sealed["revision"] == "0002a"
    # The trailer's digest (of its own header and records: not the plaintext dump's).
    assert len(sealed["digest"]) == 64 and sealed["digest"] != plain["digest"]


def test_with_the_key_a_backups_page_shows_its_tables(setup: Setup) -> None:
    detail = setup.view.get("/api/backup", "viewer", conn_id=KEYED, uri=setup.encrypted).json()
    row = detail["backup"]
    assert row["state"] == "complete" and row["locked"] is False and row["rows"] >= 3
    assert row["encryption"]["key_id"] == setup.key_id
    assert row["encryption"]["key_provider"] == "local" and row["encryption"]["version"] >= 1
    contents = setup.view.get(
        "/api/backup/contents", "viewer", conn_id=KEYED, uri=setup.encrypted
    ).json()
    tables = {t["name"]: t for t in contents["tables"]}
    assert tables["author"]["rows"] == 2 and tables["author"]["columns"] == 2
    assert contents["verified"] is True and contents["error"] is None
    assert contents["locked"] is None and contents["encrypted"] is True
    assert contents["header"]["revision"] == "0002a"


def test_with_the_key_verify_authenticates_every_segment(setup: Setup) -> None:
    for uri in (setup.encrypted, setup.tampered):
        started = setup.view.post("/api/verify", {"conn_id": KEYED, "uri": uri}, "user")
        assert started.status_code == 202, started.text
        assert started.json()["state"] == "running"
    ok = _verification(setup, KEYED, setup.encrypted)
    assert ok["ok"] is True and "OK" in ok["summary"], ok
    failed = _verification(setup, KEYED, setup.tampered)
    assert failed["ok"] is False and "authenticat" in failed["error"], failed
    # The tampered copy is the same size: only reading every segment finds it.
    assert _rows(setup, KEYED, setup.tampered_prefix)[setup.tampered]["state"] == "complete"


def test_a_multi_part_encrypted_dump_in_s3_is_listed_inspected_and_verified(setup: Setup) -> None:
    rows = _rows(setup, S3, setup.s3_prefix)
    row = rows[setup.multipart]
    assert row["encrypted"] is True and row["locked"] is False and row["parts"] >= 2
    assert row["rows"] >= 3 and row["key_id"] == setup.key_id
    contents = setup.view.get("/api/backup/contents", conn_id=S3, uri=setup.multipart).json()
    assert {t["name"]: t["rows"] for t in contents["tables"]}["author"] == 2
    assert contents["verified"] is True and contents["locked"] is None
    started = setup.view.post("/api/verify", {"conn_id": S3, "uri": setup.multipart}, "user")
    assert started.status_code == 202, started.text
    found = _verification(setup, S3, setup.multipart)
    assert found["ok"] is True, found


# -- without the key, with another key -----------------------------------------------------------


def test_without_a_key_the_envelope_header_only(setup: Setup) -> None:
    row = _rows(setup, NO_KEY)[setup.encrypted]
    assert row["state"] == "complete" and row["encrypted"] is True and row["locked"] is True
    assert row["tables"] is None and row["rows"] is None and row["digest"] is None
    assert row["key_id"] == setup.key_id and "no key configured" in row["key_problem"]
    envelope = envelope_at(setup.encrypted)
    assert envelope is not None and row["created_at"] == envelope.created_at
    assert _rows(setup, NO_KEY)[setup.plain]["locked"] is False
    detail = setup.view.get("/api/backup", conn_id=NO_KEY, uri=setup.encrypted).json()["backup"]
    header = detail["encryption"]
    assert header["key_id"] == setup.key_id and header["version"] == envelope.version
    assert header["created_at"] == envelope.created_at and "wrapped" not in json.dumps(header)
    contents = setup.view.get("/api/backup/contents", conn_id=NO_KEY, uri=setup.encrypted)
    assert contents.status_code == 200, contents.text
    found = contents.json()
    assert found["tables"] == [] and found["objects"] == {} and found["error"] is None
    assert "cannot verify without the key" in found["locked"]
    assert setup.key_id in found["locked"] and "encryption_conn_id" in found["locked"]
    assert found["encryption"]["created_at"] == envelope.created_at


def test_without_a_key_verify_says_it_cannot_verify_and_records_nothing(setup: Setup) -> None:
    answer = setup.view.post("/api/verify", {"conn_id": NO_KEY, "uri": setup.encrypted}, "user")
    assert answer.status_code == 200, answer.text
    found = answer.json()
    assert found["state"] == "cannot_verify" and found["reason"] == "no_key"
    assert "cannot verify without the key" in found["error"] and setup.key_id in found["error"]
    refused = setup.view.post("/api/verify", {"conn_id": NO_KEY, "uri": setup.encrypted}, "viewer")
    assert refused.status_code == 403
    assert _audit_entries(setup.encrypted, "cannot verify") == []


def test_another_key_is_named_by_id_beside_the_dumps_key(setup: Setup) -> None:
    row = _rows(setup, WRONG_KEY)[setup.encrypted]
    assert row["locked"] is True and row["key_problem"].startswith("wrong key")
    contents = setup.view.get("/api/backup/contents", conn_id=WRONG_KEY, uri=setup.encrypted)
    assert contents.status_code == 200, contents.text
    locked = contents.json()["locked"]
    assert locked.startswith("wrong key") and "zmvk_other_key" in locked
    assert setup.key_id in locked and setup.other_key_id in locked
    answer = setup.view.post("/api/verify", {"conn_id": WRONG_KEY, "uri": setup.encrypted}, "user")
    assert answer.status_code == 200 and answer.json()["state"] == "cannot_verify"
    assert answer.json()["error"] == locked
    # The plaintext dump beside it is shown whole.
    assert _rows(setup, WRONG_KEY)[setup.plain]["rows"] >= 3


def test_a_missing_key_connection_is_said_and_plaintext_still_shows(setup: Setup) -> None:
    response = setup.view.get("/api/backups", conn_id=BROKEN_KEY, prefix=setup.prefix)
    page = response.json()
    assert page["error"] is None and "zmvk_no_such_key" in page["key_error"]
    rows = {row["uri"]: row for row in page["backups"]}
    assert rows[setup.plain]["rows"] >= 3 and rows[setup.encrypted]["locked"] is True
    assert "zmvk_no_such_key" in rows[setup.encrypted]["key_problem"]
    answer = setup.view.post("/api/verify", {"conn_id": BROKEN_KEY, "uri": setup.encrypted})
    assert answer.json()["state"] == "cannot_verify"
    assert "zmvk_no_such_key" in answer.json()["error"]


# -- no secret anywhere -------------------------------------------------------------------------


def _audit_entries(uri: str, containing: str = "") -> list[str]:
    from airflow.models.log import Log
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        extras = session.scalars(select(Log.extra).where(Log.event.like("zenmigrate.%"))).all()
    return [e for e in extras if e and uri in e and containing in e]


def test_no_key_reaches_an_answer_a_log_or_the_audit_log(
    setup: Setup, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    view = setup.view
    answers: list[bytes] = []
    for conn_id in (KEYED, NO_KEY, WRONG_KEY, BROKEN_KEY):
        for prefix in (setup.prefix, setup.tampered_prefix):
            answers.append(view.get("/api/backups", conn_id=conn_id, prefix=prefix).content)
        for uri in (setup.encrypted, setup.tampered, setup.plain):
            answers.append(view.get("/api/backup", conn_id=conn_id, uri=uri).content)
            answers.append(view.get("/api/backup/contents", conn_id=conn_id, uri=uri).content)
        started = view.post("/api/verify", {"conn_id": conn_id, "uri": setup.encrypted}, "user")
        answers.append(started.content)
    answers.append(view.get("/api/backups", conn_id=S3, prefix=setup.s3_prefix).content)
    answers.append(view.get("/api/backup", conn_id=S3, uri=setup.multipart).content)
    answers.append(view.get("/api/backup/contents", conn_id=S3, uri=setup.multipart).content)
    for path in ("/", "/static/backups.js", "/api/databases"):
        answers.append(view.get(path).content)
    answers.append(view.get("/api/history", conn_id=KEYED).content)
    _verification(setup, KEYED, setup.encrypted)  # the verification started above has ended
    databases = json.loads(answers[-2])
    assert {d["conn_id"]: d["encryption_conn_id"] for d in databases["databases"]}[KEYED] == (
        "zmvk_key"
    )
    logged = "\n".join(r.getMessage() for r in caplog.records) + "".join(capfd.readouterr())
    recorded = "\n".join(_audit_entries(""))
    assert any(b"cannot verify without the key" in a for a in answers)
    assert safe_uri(setup.encrypted) in recorded  # the verifications were recorded
    for secret in setup.secrets:
        for i, answer in enumerate(answers):
            assert secret not in answer, f"a key in answer {i}"
        text_form = secret.decode("latin-1")
        assert text_form not in logged and text_form not in recorded
