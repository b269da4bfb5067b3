"""The "Backups" view's FastAPI app, mounted by Airflow's API server at ``/zenmigrate``
(imported only there, on the first request: :class:`.plugin.LazyApp`).

Airflow authenticates none of a plugin app's routes by itself, so every route here depends
on Airflow's own access checks (``airflow.api_fastapi.core_api.security``), with the user
of the request's token (the UI's cookie, or a bearer token):

- reading (the page, the list, a backup, the history): ``GET`` on DAG runs
  (``requires_access_dag("GET", DagAccessEntity.RUN)``); the runs shown are only those of
  DAGs the user may read;
- "Verify" and "Restore…": ``POST`` on the runs of :data:`.settings.RESTORE_DAG_ID`, the
  permission to trigger it.

No credential, password or presigned URL is ever sent: storage connections are used on the
server only, URIs go out through ``safe_uri`` and messages through ``scrub``. Only URIs
under the prefixes of :mod:`.settings` are read.

Encrypted dumps (:mod:`.encrypted`): a database's ``encryption_conn_id`` gives the key the
listing, the contents and "Verify" read them with; the key stays on the server (no answer,
log line or recorded verification holds it, only key ids). Without it, the contents show
the envelope's header and "Verify" answers at once that it cannot verify without the key
(nothing is recorded: no verification took place); a key that is not the dump's is named
by id beside the dump's.

A restore is a run of ``zenmigrate_restore`` created by Airflow's own handler of
``POST /api/v2/dags/{dag_id}/dagRuns`` (called in process with the user: the same checks
of the DAG, its params and its import errors, and the user recorded as who triggered it).
Its conf names the database's ``encryption_conn_id`` when one is configured (the id, never
the key); a backup whose restore would fail for want of its key (none configured, a key
connection that gives none, another key) is refused before a run is made.
"""

from __future__ import annotations

import datetime as dt
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from importlib import resources
from typing import Annotated, Any

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.base_auth_manager import BaseUser
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
from airflow.api_fastapi.core_api.security import get_user, requires_access_dag
from fastapi import Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..core.alembic import current_revisions
from ..core.catalog import find_backup, verify_backup
from ..core.crypto import Encryption, Envelope
from ..core.errors import EncryptionError, SettingsError
from ..core.inspection import inspect_backup
from ..core.parts.layout import is_multipart
from ..core.storage import StorageError, StorageNotFoundError, safe_uri
from .encrypted import Keys, envelope_header, envelope_of
from .listing import Candidate, backup_row, describe, list_page, location_key, message, why_locked
from .settings import RESTORE_DAG_ID, VARIABLE, DatabaseBackups, parse_settings

REVISION_SECONDS = 10.0
LIST_SECONDS = 10.0
STATIC = {
    "backups.js": "text/javascript; charset=utf-8",
    "backups.css": "text/css; charset=utf-8",
}
_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="zenmigrate-view")
_verifying: dict[tuple[str, str, str], Future[None]] = {}
_verifying_lock = threading.Lock()


class BackupAction(BaseModel):
    conn_id: str
    uri: str


class RestoreRequest(BackupAction):
    target_conn_id: str


#: Reading: the user may read DAG runs. Verify and Restore: the user may trigger the
#: restore DAG.
read = requires_access_dag(method="GET", access_entity=DagAccessEntity.RUN)
trigger = requires_access_dag(
    method="POST", access_entity=DagAccessEntity.RUN, param_dag_id=RESTORE_DAG_ID
)
User = Annotated[BaseUser, Depends(get_user)]


def _settings() -> dict[str, DatabaseBackups]:
    from airflow.models.variable import Variable

    return parse_settings(Variable.get(VARIABLE, default_var=None))


def _database(conn_id: str) -> DatabaseBackups:
    try:
        databases = _settings()
    except SettingsError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from exc
    if conn_id not in databases:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"{conn_id!r} is not a database of the Variable {VARIABLE}",
        )
    return databases[conn_id]


def _backup_of(conn_id: str, uri: str) -> tuple[DatabaseBackups, str]:
    """The configured database and the URI, refused unless under one of its prefixes."""
    database = _database(conn_id)
    if database.holds(uri) is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"{safe_uri(uri)} is not under a backup prefix of {conn_id!r} ({VARIABLE})",
        )
    return database, uri


def _transport_params(database: DatabaseBackups) -> dict[str, Any] | None:
    from ..hooks.zenmigrate import ZenMigrateHook

    hook = ZenMigrateHook(conn_id=database.conn_id, storage_conn_id=database.storage_conn_id)
    try:
        return hook.get_transport_params()
    except Exception as exc:  # noqa: BLE001 - a missing or broken storage connection
        raise HTTPException(status.HTTP_400_BAD_REQUEST, message(exc)) from exc


def _keys(database: DatabaseBackups) -> Keys:
    """The key of ``database``'s encrypted dumps, from its ``encryption_conn_id`` (read on
    every request, as the Variable is). A connection that is missing or holds no usable key
    is the returned ``error`` (naming the connection, never its password): the plaintext
    backups still show."""
    from ..hooks.zenmigrate import ZenMigrateHook

    if database.encryption_conn_id is None:
        return Keys(database.conn_id)
    hook = ZenMigrateHook(conn_id=database.conn_id, encryption_conn_id=database.encryption_conn_id)
    try:
        encryption = hook.get_encryption()
    except Exception as exc:  # noqa: BLE001 - a missing or broken key connection
        return Keys(database.conn_id, database.encryption_conn_id, error=message(exc))
    return Keys(database.conn_id, database.encryption_conn_id, encryption)


def _user_name(user: Any) -> str:
    return str(user.get_name())


def _readable_dags(user: Any) -> set[str]:
    return set(get_auth_manager().get_authorized_dag_ids(user=user, method="GET"))


def _can_trigger(user: Any) -> bool:
    return bool(
        get_auth_manager().is_authorized_dag(
            method="POST",
            access_entity=DagAccessEntity.RUN,
            details=DagDetails(id=RESTORE_DAG_ID),
            user=user,
        )
    )


def _annotate(rows: list[dict[str, Any]], user: Any) -> None:
    """Add the run that took each backup and its last verification."""
    from airflow.utils.session import create_session

    from .records import backup_runs, verifications

    uris = [row["uri"] for row in rows]
    with create_session() as session:
        runs = backup_runs(session, uris, _readable_dags(user))
        checks = verifications(session, uris)
    for row in rows:
        key = location_key(row["uri"])
        row["run"] = runs.get(key)
        row["verification"] = checks.get(key)
        with _verifying_lock:
            job = _verifying.get(key)
        if job is not None and not job.done():
            row["verification"] = {"state": "running"}


def _current_revision(conn_id: str) -> dict[str, Any]:
    """The database's Alembic revision, read within :data:`REVISION_SECONDS`."""
    from ..hooks.zenmigrate import ZenMigrateHook

    def read() -> list[str]:
        hook = ZenMigrateHook(conn_id=conn_id)
        try:
            utils = hook.get_migration_utils()
            return current_revisions(utils.engine, version_table=utils.version_table)
        finally:
            hook.close()

    job = _pool.submit(read)
    try:
        revisions = job.result(timeout=REVISION_SECONDS)
    except FutureTimeout:
        return {"revision": None, "error": f"no answer within {REVISION_SECONDS:.0f} s"}
    except Exception as exc:  # noqa: BLE001 - shown on the page, scrubbed
        return {"revision": None, "error": message(exc)}
    return {"revision": "+".join(revisions) if revisions else None, "error": None}


def _verify(
    database: DatabaseBackups, uri: str, user: str, encryption: Encryption | None = None
) -> None:
    """Run ``verify`` and record the outcome in Airflow's audit log (in a worker thread).
    An encrypted dump is read with ``encryption``: every segment is authenticated."""
    from airflow.utils.session import create_session

    from .records import VERIFY_EVENT, record

    outcome: dict[str, Any] = {"uri": safe_uri(uri)}
    try:
        report = verify_backup(uri, _transport_params(database), encryption=encryption)
        outcome.update(ok=report.ok, error=report.error, summary=str(report))
        if report.ok and report.manifest_ok is False:
            outcome.update(ok=False, error="the dump is whole but its manifest does not match it")
    except HTTPException as exc:
        outcome.update(ok=False, error=str(exc.detail))
    except Exception as exc:  # noqa: BLE001 - recorded as the verification's failure
        outcome.update(ok=False, error=message(exc))
    with create_session() as session:
        record(session, VERIFY_EVENT, user, outcome)


def _cannot_verify(database: DatabaseBackups, uri: str, keys: Keys) -> dict[str, Any] | None:
    """The answer to "Verify" of an encrypted dump no configured key opens (no key, a key
    connection that gives none, another key): said at once, and not recorded as a failed
    verification, since none took place. ``None``: verify it (a store that cannot be read
    here is left to the verification, which records why)."""
    try:
        envelope = envelope_of(uri, _transport_params(database))
    except Exception:  # noqa: BLE001 - the verification reports it
        return None
    problem = keys.problem(envelope, safe_uri(uri)) if envelope is not None else None
    if envelope is None or problem is None:
        return None
    return {
        "state": "cannot_verify",
        "uri": safe_uri(uri),
        "reason": "no_key" if keys.encryption_conn_id is None else "key",
        "error": problem,
        "encryption": envelope_header(envelope),
    }


def _envelope_or_none(uri: str, params: dict[str, Any] | None) -> Envelope | None:
    """The dump's envelope for its page; ``None`` for a plaintext dump, and for one whose
    first bytes (or multi-part manifest) cannot be read or parsed: its row says why."""
    try:
        return envelope_of(uri, params)
    except Exception:  # noqa: BLE001 - the row of a damaged dump already says what is wrong
        return None


def _locked_contents(uri: str, envelope: dict[str, Any] | None, problem: str) -> dict[str, Any]:
    """The contents of an encrypted dump the view cannot open: its envelope's header and
    why (no table, row or object: they are sealed)."""
    created = (envelope or {}).get("created_at")
    return {
        "uri": safe_uri(uri),
        "header": {"created_at": created},
        "tables": [],
        "objects": {},
        "verified": False,
        "legacy": False,
        "error": None,
        "parts": None,
        "encrypted": True,
        "encryption": envelope,
        "locked": problem,
    }


def _html(name: str) -> str:
    return (resources.files(__package__) / "static" / name).read_text(encoding="utf-8")


def create_app() -> FastAPI:
    """The app, with every route behind Airflow's authentication and access checks."""
    app = FastAPI(title="zenmigrate backups", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(StarletteHTTPException)
    async def _refused(request: Request, exc: StarletteHTTPException) -> Response:
        accepts_html = "text/html" in request.headers.get("accept", "")
        if exc.status_code in (401, 403) and accepts_html:
            body = (
                "<!doctype html><title>Backups</title><p>You are not signed in to Airflow, or "
                "may not read DAG runs. <a href='../auth/login?next=../zenmigrate/' "
                "target='_top'>Sign in</a>.</p>"
            )
            return HTMLResponse(body, status_code=exc.status_code)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    @app.get("/", dependencies=[Depends(read)], response_class=HTMLResponse)
    def page() -> HTMLResponse:
        return HTMLResponse(_html("index.html"), headers={"Cache-Control": "no-store"})

    @app.get("/static/{name}", dependencies=[Depends(read)])
    def static(name: str) -> Response:
        if name not in STATIC:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such file")
        return Response(_html(name), media_type=STATIC[name])

    @app.get("/api/databases", dependencies=[Depends(read)])
    def databases(user: User) -> dict[str, Any]:
        from airflow.models.dag import DagModel
        from airflow.utils.session import create_session

        with create_session() as session:
            restore_dag = session.get(DagModel, RESTORE_DAG_ID)
            paused = None if restore_dag is None else bool(restore_dag.is_paused)
        answer: dict[str, Any] = {
            "user": _user_name(user),
            "can_trigger": _can_trigger(user),
            "restore_dag_id": RESTORE_DAG_ID,
            "restore_dag_exists": restore_dag is not None,
            "restore_dag_paused": paused,
            "variable": VARIABLE,
            "databases": [],
            "error": None,
        }
        try:
            found = _settings()
        except SettingsError as exc:
            answer["error"] = str(exc)
            return answer
        answer["databases"] = [
            {
                "conn_id": d.conn_id,
                "storage_conn_id": d.storage_conn_id,
                "encryption_conn_id": d.encryption_conn_id,
                "prefixes": [safe_uri(p) for p in d.prefixes],
            }
            for d in found.values()
        ]
        return answer

    @app.get("/api/backups", dependencies=[Depends(read)])
    def backups(
        user: User,
        conn_id: str,
        prefix: str,
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=100)] = 25,
    ) -> dict[str, Any]:
        database = _database(conn_id)
        configured = {safe_uri(p): p for p in database.prefixes}
        if prefix not in configured:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND, f"{prefix!r} is not a prefix of {conn_id!r}"
            )
        try:
            params = _transport_params(database)
        except HTTPException as exc:
            return {"prefix": prefix, "backups": [], "found": 0, "next_offset": None,
                    "truncated": None, "error": str(exc.detail)}  # fmt: skip
        keys = _keys(database)
        page = list_page(configured[prefix], params, offset, limit, LIST_SECONDS, keys)
        _annotate(page.backups, user)
        return {
            "prefix": page.prefix,
            "backups": page.backups,
            "found": page.found,
            "next_offset": page.next_offset,
            "truncated": page.truncated,
            "error": page.error,
            "key_error": keys.error,
        }

    @app.get("/api/history", dependencies=[Depends(read)])
    def history(user: User, conn_id: str) -> dict[str, Any]:
        from airflow.utils.session import create_session

        from .records import history as runs_of

        _database(conn_id)
        with create_session() as session:
            runs = runs_of(session, conn_id, _readable_dags(user))
        return {"conn_id": conn_id, "current": _current_revision(conn_id), "runs": runs}

    @app.get("/api/backup", dependencies=[Depends(read)])
    def backup(user: User, conn_id: str, uri: str) -> dict[str, Any]:
        database, uri = _backup_of(conn_id, uri)
        params = _transport_params(database)
        keys = _keys(database)
        try:
            multipart = is_multipart(uri, params)
            info = find_backup(uri, params, encryption=keys.reading)
        except StorageNotFoundError as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, message(exc)) from exc
        except StorageError as exc:
            raise HTTPException(status.HTTP_502_BAD_GATEWAY, message(exc)) from exc
        envelope = _envelope_or_none(uri, params) if info is None or info.encrypted else None
        if info is None:
            row = describe(Candidate(uri, None, multipart, True), params, keys)
        else:
            row = backup_row(info, why_locked(info, params, keys))
        row["encryption"] = envelope_header(envelope)
        if envelope is not None:
            row["encrypted"] = True
            row["key_id"] = envelope.key.key_id
        _annotate([row], user)
        return {"conn_id": conn_id, "backup": row, "can_trigger": _can_trigger(user)}

    @app.get("/api/backup/contents", dependencies=[Depends(read)])
    def contents(conn_id: str, uri: str) -> dict[str, Any]:
        database, uri = _backup_of(conn_id, uri)
        params = _transport_params(database)
        keys = _keys(database)
        envelope = None
        try:
            envelope = envelope_of(uri, params)
            problem = keys.problem(envelope, safe_uri(uri)) if envelope is not None else None
            if problem is not None:
                assert envelope is not None
                return _locked_contents(uri, envelope_header(envelope), problem)
            found = inspect_backup(uri, params, encryption=keys.reading)
        except StorageNotFoundError as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, message(exc)) from exc
        except StorageError as exc:
            raise HTTPException(status.HTTP_502_BAD_GATEWAY, message(exc)) from exc
        except EncryptionError as exc:  # a key service's refusal, an altered envelope
            return _locked_contents(uri, envelope_header(envelope), message(exc))
        except Exception as exc:  # noqa: BLE001 - an envelope that cannot be parsed
            raise HTTPException(status.HTTP_502_BAD_GATEWAY, message(exc)) from exc
        header = {
            k: found.header.get(k)
            for k in ("database", "dialect", "server_version", "created_at", "tool_version")
        }
        header["revision"] = found.revision
        return {
            "uri": found.uri,
            "header": header,
            "tables": [
                {"name": name, "rows": t.rows, "bytes": t.bytes, "columns": t.columns}
                for name, t in found.tables.items()
            ],
            "objects": found.objects,
            "verified": found.verified,
            "legacy": found.legacy,
            "error": found.error,
            "parts": found.parts,
            "encrypted": envelope is not None,
            "encryption": envelope_header(envelope),
            "locked": None,
        }

    @app.post("/api/verify", dependencies=[Depends(trigger)], status_code=202)
    def verify(user: User, body: BackupAction) -> Any:
        database, uri = _backup_of(body.conn_id, body.uri)
        keys = _keys(database)
        refused = _cannot_verify(database, uri, keys)
        if refused is not None:
            return JSONResponse(refused, status_code=status.HTTP_200_OK)
        key = location_key(uri)
        with _verifying_lock:
            running = _verifying.get(key)
            if running is None or running.done():
                _verifying[key] = _pool.submit(
                    _verify, database, uri, _user_name(user), keys.encryption
                )
        return {"state": "running", "uri": safe_uri(uri)}

    @app.post("/api/restore", dependencies=[Depends(trigger)])
    def restore(user: User, body: RestoreRequest, request: Request) -> dict[str, Any]:
        from airflow.api_fastapi.core_api.datamodels.dag_run import TriggerDAGRunPostBody
        from airflow.api_fastapi.core_api.routes.public.dag_run import trigger_dag_run
        from airflow.exceptions import AirflowNotFoundException
        from airflow.models.connection import Connection
        from airflow.models.dag import DagModel
        from airflow.models.dagbag import DBDagBag
        from airflow.utils.session import create_session

        from .records import RESTORE_EVENT, record, run_link

        database, uri = _backup_of(body.conn_id, body.uri)
        params = _transport_params(database)
        try:
            complete = find_backup(uri, params) is not None
        except StorageError as exc:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, message(exc)) from exc
        if not complete:
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST,
                f"{safe_uri(uri)} is not a complete backup (its manifest does not check out)",
            )
        try:
            envelope = envelope_of(uri, params)
        except Exception as exc:  # noqa: BLE001 - an envelope a restore could not read either
            raise HTTPException(status.HTTP_400_BAD_REQUEST, message(exc)) from exc
        # A run that would fail for want of the key is not triggered: the page says why.
        keyless = _keys(database).restore_problem(envelope, safe_uri(uri))
        if keyless is not None:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, keyless)
        try:
            Connection.get_connection_from_secrets(body.target_conn_id)
        except AirflowNotFoundException as exc:
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST,
                f"the target connection {body.target_conn_id!r} does not exist: create it "
                "under Admin > Connections first",
            ) from exc
        conf = {
            "conn_id": body.target_conn_id,
            "storage_conn_id": database.storage_conn_id or "",
            "uri": uri,
        }
        if database.encryption_conn_id is not None:
            # The connection's id only: the key stays in the connection, read by the task.
            conf["encryption_conn_id"] = database.encryption_conn_id
        note = f"Restore of {safe_uri(uri)} into {body.target_conn_id} (Backups view)"
        trigger_body = TriggerDAGRunPostBody(logical_date=None, conf=conf, note=note)
        with create_session() as session:
            run = trigger_dag_run(RESTORE_DAG_ID, trigger_body, DBDagBag(), user, session, request)
            # Airflow's handler returns the DagRun row (its response model is built from it).
            run_id = str(getattr(run, "run_id", None) or run.dag_run_id)
            dag = session.get(DagModel, RESTORE_DAG_ID)
            record(
                session,
                RESTORE_EVENT,
                _user_name(user),
                {"uri": safe_uri(uri), "target_conn_id": body.target_conn_id, "run_id": run_id},
            )
        return {
            "dag_id": RESTORE_DAG_ID,
            "run_id": run_id,
            "link": run_link(RESTORE_DAG_ID, run_id),
            "paused": bool(dag.is_paused) if dag is not None else None,
            "at": dt.datetime.now(dt.UTC).isoformat(),
        }

    return app
