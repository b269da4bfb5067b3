"""A real Airflow 3 deployment on this machine, started and stopped by the e2e tests.

One process each for ``api-server``, ``scheduler``, ``dag-processor`` and ``triggerer``,
with the LocalExecutor, a fresh ``AIRFLOW_HOME`` in a temporary folder, the project's
``example_dags`` as the DAG folder, and a uniquely named PostgreSQL metadata database
(Airflow refuses the LocalExecutor on SQLite). Every process is started in its own
session, so stopping it by its process id (its process group) also stops the task
processes the executor forked. The simple auth manager has one configured admin whose
password the test writes into the passwords file, so the REST API and the UI are used
through a real login.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import sqlalchemy
from cryptography.fernet import Fernet
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool

from tests.support.object_stores import free_port
from tests.support.paths import REPO
from tests.support.servers import SERVER_URLS

AIRFLOW = str(Path(sys.executable).parent / "airflow")
EXAMPLE_DAGS = REPO / "example_dags"
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
USERNAME = "admin"
TERMINAL = {"success", "failed"}


class DeploymentError(AssertionError):
    """Airflow did not start or did not answer; the message carries the components' logs."""


@dataclass
class Airflow:
    """A running deployment: its URL, home, REST client and the processes it owns."""

    home: Path
    port: int
    password: str
    env: dict[str, str]
    metadata_url: URL
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _token: str | None = None
    #: Every user's password (the admin's too), by name; see ``airflow_deployment``'s users.
    passwords: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- processes -----------------------------------------------------------------------------
    def run(self, *args: str, timeout: float = 300) -> str:
        """Run an ``airflow`` command to completion (db migrate, ...)."""
        result = subprocess.run(
            [AIRFLOW, *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if result.returncode != 0:
            raise DeploymentError(
                f"airflow {' '.join(args)} exited {result.returncode}:\n{result.stderr[-3000:]}"
            )
        return result.stdout

    def start(self, component: str) -> None:
        args = [component]
        if component == "api-server":
            args += ["--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
        log = self.home / f"{component}.log"
        with log.open("wb") as out:
            self.processes[component] = subprocess.Popen(
                [AIRFLOW, *args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.home,
                start_new_session=True,  # its own process group: stop() reaches its children
            )

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise DeploymentError(
                    f"airflow {name} exited with code {process.returncode}\n{self.logs(name)}"
                )

    def logs(self, *components: str, tail: int = 4000) -> str:
        out = []
        for name in components or tuple(self.processes):
            path = self.home / f"{name}.log"
            text = path.read_text(errors="replace") if path.exists() else "(no log)"
            out.append(f"--- {name} ({path}) ---\n{text[-tail:]}")
        return "\n".join(out)

    def stop(self) -> list[str]:
        """Stop every process this deployment started (by its pid's process group).

        Returns what could not be stopped cleanly (killed after the grace period).
        """
        for process in self.processes.values():
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        killed = []
        deadline = time.monotonic() + 20
        for name, process in self.processes.items():
            try:
                process.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                killed.append(name)
            # The group outlives its leader when forked task processes linger: kill what is left.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        return killed

    # -- REST API ------------------------------------------------------------------------------
    def token(self) -> str:
        if self._token is None:
            response = httpx.post(
                f"{self.url}/auth/token",
                json={"username": USERNAME, "password": self.password},
                timeout=30,
            )
            assert response.status_code == 201, response.text
            self._token = str(response.json()["access_token"])
        return self._token

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call ``/api/v2`` + ``path``; fail with the answer unless it is a 2xx."""
        headers = {"Authorization": f"Bearer {self.token()}", "Accept": "application/json"}
        response = httpx.request(
            method, f"{self.url}/api/v2{path}", headers=headers, timeout=60, **kwargs
        )
        assert response.is_success, f"{method} {path}: {response.status_code} {response.text}"
        return response.json() if response.content else None

    def wait_until_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                response = httpx.get(f"{self.url}/api/v2/monitor/health", timeout=5)
                health = response.json()
                last = json.dumps(health)
                if (
                    health["metadatabase"]["status"] == "healthy"
                    and health["scheduler"]["status"] == "healthy"
                    and (health.get("dag_processor") or {}).get("status") == "healthy"
                    and (health.get("triggerer") or {}).get("status") == "healthy"
                ):
                    return
            except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(1)
        raise DeploymentError(f"Airflow not healthy within {timeout:.0f}s: {last}\n{self.logs()}")

    def wait_for_dag(self, dag_id: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            errors = self.api("GET", "/importErrors")
            assert errors["total_entries"] == 0, errors
            found = self.api("GET", "/dags", params={"dag_id_pattern": dag_id})
            for dag in found["dags"]:
                if dag["dag_id"] == dag_id:
                    return dict(dag)
            time.sleep(1)
        raise DeploymentError(f"DAG {dag_id} not parsed within {timeout:.0f}s\n{self.logs()}")

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> str:
        run_id = f"e2e__{uuid.uuid4().hex[:8]}"
        body = {"dag_run_id": run_id, "logical_date": None, "conf": conf}
        self.api("POST", f"/dags/{dag_id}/dagRuns", json=body)
        return run_id

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        run: dict[str, Any] = {}
        while time.monotonic() < deadline:
            self.check_alive()
            run = self.api("GET", f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}")
            if run["state"] in TERMINAL:
                return run
            time.sleep(2)
        raise DeploymentError(
            f"run {run_id} still {run.get('state')} after {timeout:.0f}s\n{self.logs()}"
        )

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        found = self.api("GET", f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances")
        return {ti["task_id"]: ti["state"] for ti in found["task_instances"]}

    def task_path(self, dag_id: str, run_id: str, task_id: str) -> str:
        return f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}"


def _admin_engine() -> sqlalchemy.Engine:
    return sqlalchemy.create_engine(
        make_url(SERVER_URLS["postgresql"]), poolclass=NullPool, isolation_level="AUTOCOMMIT"
    )


@contextlib.contextmanager
def airflow_deployment(
    root: Path, extra_env: dict[str, str], users: dict[str, str] | None = None
) -> Iterator[Airflow]:
    """Start the deployment in ``root`` (its AIRFLOW_HOME); stop it and drop its metadata.

    ``users`` adds users of the simple auth manager beside the admin (name -> role:
    ``viewer``, ``user``, ``op`` or ``admin``), each with a password of its own.
    """
    home = root / "airflow"
    home.mkdir(parents=True)
    name = f"zme2e_airflow_{uuid.uuid4().hex[:8]}"
    admin = _admin_engine()
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    metadata = make_url(SERVER_URLS["postgresql"])._replace(database=name)
    roles = {USERNAME: "admin", **(users or {})}
    secrets_by_user = {user: "ui-" + secrets.token_urlsafe(12) for user in roles}
    password = secrets_by_user[USERNAME]
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps(secrets_by_user))
    port = free_port()
    env = {
        **os.environ,
        **extra_env,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(EXAMPLE_DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{r}" for u, r in roles.items()),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata.render_as_string(hide_password=False),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
        # Quick pick-up of new DAG files and runs: the test waits on both.
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
    }
    env.pop("ZENMIGRATE_TEST_AIRFLOW_HOME", None)
    airflow = Airflow(
        home=home,
        port=port,
        password=password,
        env=env,
        metadata_url=metadata,
        passwords=secrets_by_user,
    )
    try:
        airflow.run("db", "migrate")
        for component in COMPONENTS:
            airflow.start(component)
        yield airflow
    finally:
        killed = airflow.stop()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
        if killed:
            print(f"airflow components killed after the grace period: {killed}", file=sys.stderr)
