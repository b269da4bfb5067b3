"""Back up, rehearse and migrate a fleet of databases, one mapped task group per database;
a database whose migration fails is put back as it was, the others carry on.

conn_ids -> database[conn_id] (mapped, one per connection id) -> fleet_report

database: wait_turn -> check_pending -> backup -> rehearse -> upgrade -> restore_needed
          -> restore_on_failure

Which databases: the param ``conn_ids`` (a list of Airflow connection ids), or, when it is
null (the default), the Airflow Variable ``zenmigrate_fleet_conn_ids`` holding a JSON list,
for example ``airflow variables set zenmigrate_fleet_conn_ids '["app_eu", "app_us"]'``.
``conn_ids`` refuses, before any database is touched, an empty list, a name listed twice
(two migrations of one database at once), a list longer than ``max_map_length`` and any
connection that is not defined (naming each one and how to create it).

Each database waits for its turn (see Concurrency), then goes through the single-database
DAG's steps (see ``zenmigrate_backup_then_migrate``), each task's map index labelled by its
connection id:

- its turn never came (wait_turn failed or timed out): nothing ran on it;
- nothing pending: the rest of its group is skipped;
- the rehearsal fails (``fail_on``, ``max_duration``, ``check_downgrade``): its upgrade
  never runs and nothing is restored;
- its upgrade fails: restore_needed hands on the backup taken in this run, and
  restore_on_failure restores it, for that database only;
- its backup fails: nothing ran on it, nothing is restored.

fleet_report runs once every group is done. It logs each database's outcome and fails
the run, naming each database that did not end upgraded (or already at head) and why, so
on-call sees a red run even when every failed database was restored.

Concurrency: at most the param ``max_parallel`` (default 4) databases are in flight at once,
per run. wait_turn, the first task of each group, is a sensor in reschedule mode: the
database at map index i starts when fewer than ``max_parallel`` of the databases before it
(map indexes j < i) are unfinished, a database being finished when its tasks up to the
upgrade are in a final state (success, failed, skipped, upstream_failed, removed) and, when
its upgrade failed, its restore too (see ``unfinished_before``). Databases start
in list order, the first one always starts (no deadlock), and the last one running sees
every other running one before it, so the bound holds at every moment. Its cost: each
waiting database is a task instance in up_for_reschedule that occupies no worker slot
between checks but starts a short task try every ``poke_interval`` seconds (default 30;
fewer for a large fleet of long migrations), and a database starts up to ``poke_interval``
after its turn comes. A database that waits longer than ``[sensors] default_timeout``
(7 days by default) fails at wait_turn, untouched, and fleet_report names it. Airflow's own
limits apply on top: the DAG's ``max_active_tasks`` (``[core] max_active_tasks_per_dag``,
16 by default) and pools cap the task instances running at once, wait_turn's tries included.

Mapping limits: a mapped task group expands into at most ``[core] max_map_length`` map
indexes (default 1024, ``AIRFLOW__CORE__MAX_MAP_LENGTH``); ``conn_ids`` refuses a longer
list naming the limit. Every map index is one task instance per step in the metadata
database and in the grid view, so fleets of hundreds are better split into several runs.

Params: ``conn_ids``, ``storage_conn_id``, ``script_location`` (one set of scripts for every
database), ``backup_prefix`` (one backup per database under
``<prefix>/<dag_id>/<run_id>/<conn_id>.jsonl.zst``), ``fail_on``, ``max_duration``,
``check_downgrade`` (as in the single-database DAG), ``max_parallel`` (at least 1) and
``poke_interval`` (seconds, at least 1).
"""

from __future__ import annotations

import logging
from typing import Any

from _defaults import DEFAULT_PARAMS
from airflow.sdk import (
    DAG,
    BaseSensorOperator,
    Param,
    TriggerRule,
    Variable,
    get_current_context,
    task,
    task_group,
)
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from airflow_provider_zenmigrate.operators import (
    BackupToStorageOperator,
    PendingMigrationsOperator,
    RehearseMigrationOperator,
    RestoreOperator,
    UpgradeOperator,
)

log = logging.getLogger(__name__)

#: The Variable read when the run gives no ``conn_ids``.
CONN_IDS_VARIABLE = "zenmigrate_fleet_conn_ids"
#: The default of the param max_parallel: databases in flight at once in a run.
MAX_PARALLEL = 4
#: The default of the param poke_interval: seconds between a waiting database's checks.
POKE_INTERVAL = 30
GROUP = "database"
# The group's steps, in order; wait_turn and fleet_report read their states per map index.
STEPS = (
    "wait_turn",
    "check_pending",
    "backup",
    "rehearse",
    "upgrade",
    "restore_needed",
    "restore_on_failure",
)

# This expansion's connection id: the item of conn_ids' list at this task's map index.
# A template rather than the group's mapped argument, because BackupToStorageOperator
# names its Asset from conn_id when the DAG is parsed and so needs a string there.
CONN_ID = "ti.xcom_pull(task_ids='conn_ids')[ti.map_index]"
CONN = "{{ " + CONN_ID + " }}"
STORAGE = "{{ params.storage_conn_id }}"
SCRIPTS = "{{ params.script_location }}"
BACKUP_URI = (
    "{{ params.backup_prefix }}/{{ dag.dag_id }}/{{ run_id | replace(':', '_') }}/"
    "{{ " + CONN_ID + " }}.jsonl.zst"
)
# XCom pulls name this expansion's map index: without it, a task in a mapped group pulls
# the values of every expansion (RehearseMigrationOperator's and RestoreOperator's
# backup_task_id and migration_task_id do that, hence uri= here).
THIS_BACKUP = "ti.xcom_pull(task_ids='" + GROUP + ".backup', map_indexes=ti.map_index)"


@task(task_id="conn_ids")
def resolve_conn_ids() -> list[str]:
    """The connection ids to map over, checked before any database is touched."""
    from airflow.sdk.configuration import conf

    from airflow_provider_zenmigrate.hooks.zenmigrate import ConnectionNotDefined, ZenMigrateHook

    context = get_current_context()
    params = context["params"]
    conn_ids = params["conn_ids"]
    source = "the param conn_ids"
    if conn_ids is None:
        source = f"the Variable {CONN_IDS_VARIABLE}"
        conn_ids = Variable.get(CONN_IDS_VARIABLE, default=None, deserialize_json=True)
        if conn_ids is None:
            raise AirflowFailException(
                "no databases: give the param conn_ids (a list of connection ids) or set the "
                f"Variable {CONN_IDS_VARIABLE} to a JSON list of them"
            )
    if not isinstance(conn_ids, list) or not all(isinstance(c, str) and c for c in conn_ids):
        raise AirflowFailException(f"{source} must be a list of connection ids, got {conn_ids!r}")
    if not conn_ids:
        raise AirflowFailException(f"{source} is an empty list: no database to migrate")
    twice = sorted({c for c in conn_ids if conn_ids.count(c) > 1})
    if twice:
        raise AirflowFailException(
            f"{source} lists {', '.join(map(repr, twice))} more than once: the same database "
            "would be backed up and migrated by two groups at once"
        )
    limit = conf.getint("core", "max_map_length")
    if len(conn_ids) > limit:
        raise AirflowFailException(
            f"{source} holds {len(conn_ids)} connections, more than Airflow maps in one run "
            f"([core] max_map_length = {limit}): split the fleet or raise the limit"
        )
    missing = []
    for conn_id in conn_ids:
        try:
            ZenMigrateHook(conn_id=conn_id).get_settings()  # reads the connection, no database
        except ConnectionNotDefined as exc:
            missing.append((conn_id, str(exc)))
    if missing:
        raise AirflowFailException(
            f"{len(missing)} of the {len(conn_ids)} connections in {source} "
            f"{'is' if len(missing) == 1 else 'are'} not defined: "
            f"{', '.join(repr(c) for c, _ in missing)}; no database was touched. "
            + " ".join(message for _, message in missing)
        )
    return list(conn_ids)


# A task instance in one of these states will not run again in this run.
FINISHED = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})


def unfinished_before(index: int, states: dict[str, Any]) -> list[int]:
    """The map indexes before ``index`` whose databases are not finished: waiting for their
    turn, or in flight.

    A database is finished when its steps up to the upgrade are in a final state and, when
    its upgrade failed, its restore too. Its restore tasks are not waited for otherwise:
    they then end skipped without touching it, and Airflow expands them only once every
    upgrade of the run is done or one failed (ONE_FAILED on a mapped group's unexpanded
    task), which, waited for, would hold the first database in flight until the last ended.
    """

    def done(step: str, j: int) -> bool:
        return states.get(f"{GROUP}.{step}_{j}") in FINISHED

    work = STEPS[: STEPS.index("upgrade") + 1]
    return [
        j
        for j in range(index)
        if not all(done(step, j) for step in work)
        or (
            states.get(f"{GROUP}.upgrade_{j}") == "failed"
            and not all(done(step, j) for step in STEPS)
        )
    ]


class WaitTurn(BaseSensorOperator):
    """Lets this database start once fewer than ``max_parallel`` of the databases before it
    are unfinished: the run's param bounds the databases in flight (a parse-time
    ``max_active_tis_per_dagrun`` could not change per run), first come first served."""

    def execute(self, context: Any) -> Any:
        """Reads the run's poke interval before the sensor's loop uses it."""
        self.poke_interval = float(context["params"]["poke_interval"])
        return super().execute(context)

    def poke(self, context: Any) -> bool:
        """True when this database's turn has come."""
        ti = context["ti"]
        bound = int(context["params"]["max_parallel"])
        if ti.map_index < bound:  # fewer than max_parallel databases come before it
            return True
        found = ti.get_task_states(dag_id=ti.dag_id, task_group_id=GROUP, run_ids=[ti.run_id])
        before = unfinished_before(ti.map_index, found.get(ti.run_id, {}))
        if len(before) < bound:
            return True
        conn_ids = ti.xcom_pull(task_ids="conn_ids") or []
        names = [conn_ids[j] if j < len(conn_ids) else str(j) for j in before]
        self.log.info(
            "Waiting: %d databases before this one are unfinished (max_parallel %d): %s",
            len(before),
            bound,
            ", ".join(names[:10]) + (", ..." if len(names) > 10 else ""),
        )
        return False


@task(
    task_id="restore_needed",
    trigger_rule=TriggerRule.ONE_FAILED,
    map_index_template="{{ conn_id }}",
)
def restore_needed(conn_id: str) -> str:
    """The backup to restore when this database's upgrade started and failed; skipped when
    the upgrade never started (the database was never touched)."""
    context = get_current_context()
    context["conn_id"] = conn_id  # type: ignore[typeddict-unknown-key]  # the map index label
    ti = context["ti"]
    started = ti.xcom_pull(
        task_ids=f"{GROUP}.upgrade", key="migration_started", map_indexes=ti.map_index
    )
    if not started:
        raise AirflowSkipException(
            f"the migration of {conn_id!r} never ran (its backup, rehearsal or a task before "
            "them failed): nothing to restore, the database is left as it is"
        )
    backup = ti.xcom_pull(task_ids=f"{GROUP}.backup", map_indexes=ti.map_index)
    if not backup or not backup.get("uri"):
        raise AirflowFailException(f"the upgrade of {conn_id!r} started without a backup")
    return str(backup["uri"])


@task_group(group_id=GROUP, default_args={"map_index_template": CONN})
def database(conn_id: str) -> None:
    """Its turn, then backup, rehearsal, upgrade and, when the upgrade fails, restore of one
    database."""
    # Reschedule mode: a waiting database holds no worker slot between its checks.
    wait_turn = WaitTurn(task_id="wait_turn", mode="reschedule")
    check_pending = PendingMigrationsOperator(
        task_id="check_pending", conn_id=CONN, script_location=SCRIPTS
    )
    backup = BackupToStorageOperator(
        task_id="backup", conn_id=CONN, storage_conn_id=STORAGE, uri=BACKUP_URI
    )
    rehearse = RehearseMigrationOperator(
        task_id="rehearse",
        conn_id=CONN,
        storage_conn_id=STORAGE,
        script_location=SCRIPTS,
        uri="{{ " + THIS_BACKUP + "['uri'] }}",
        fail_on="{{ params.fail_on }}",
        max_duration="{{ params.max_duration }}",
        check_downgrade="{{ params.check_downgrade }}",
        allow_routines=True,  # the database's own routines, as in the single-database DAG
    )
    upgrade = UpgradeOperator(task_id="upgrade", conn_id=CONN, script_location=SCRIPTS)
    restore = RestoreOperator(
        task_id="restore_on_failure",
        conn_id=CONN,
        storage_conn_id=STORAGE,
        uri="{{ ti.xcom_pull(task_ids='" + GROUP + ".restore_needed', map_indexes=ti.map_index) }}",
        # The backup this run has just taken of this very database (see the single-database
        # DAG on why its routines are allowed).
        allow_routines=True,
    )
    (
        wait_turn
        >> check_pending
        >> backup
        >> rehearse
        >> upgrade
        >> restore_needed(conn_id)
        >> restore
    )


def _outcome(states: dict[str, str | None]) -> tuple[bool, str]:
    """Whether one database ended well, and what happened to it, from its steps' states."""
    if states["upgrade"] == "success":
        return True, "upgraded"
    if states["wait_turn"] == "failed":
        return False, (
            "its turn never came (wait_turn failed or timed out waiting for the databases "
            "before it, see its log); not touched"
        )
    if states["check_pending"] == "skipped" and states["backup"] == "skipped":
        return True, "already at head, nothing to do"
    if states["check_pending"] == "failed":
        return False, "its migration state could not be read (see check_pending); not touched"
    if states["backup"] == "failed":
        return False, "its backup failed; the upgrade did not run, the database was not touched"
    if states["rehearse"] == "failed":
        return False, "the rehearsal stopped it before the database was touched"
    if states["upgrade"] == "failed" and states["restore_on_failure"] == "success":
        return False, "the upgrade failed; restored from the backup taken before it"
    if states["upgrade"] == "failed":
        return False, (
            f"the upgrade failed and the restore did not succeed "
            f"({states['restore_needed']}, {states['restore_on_failure']}): the database may "
            "be half-migrated; restore it from this run's backup (see its backup task)"
        )
    return False, f"did not finish: {states}"


@task(task_id="fleet_report", trigger_rule=TriggerRule.ALL_DONE)
def fleet_report() -> dict[str, str]:
    """Each database's outcome; fails the run naming the databases that did not end well
    (a run's state comes from its leaves, and a restored database must still show red)."""
    context = get_current_context()
    ti = context["ti"]
    conn_ids = ti.xcom_pull(task_ids="conn_ids")
    if not conn_ids:
        raise AirflowFailException(
            "no database was migrated: the list of connections was refused (see task conn_ids)"
        )
    found = ti.get_task_states(dag_id=ti.dag_id, task_group_id=GROUP, run_ids=[ti.run_id])
    states: dict[str, Any] = found.get(ti.run_id, {})
    outcomes: dict[str, str] = {}
    failed: list[str] = []
    for index, conn_id in enumerate(conn_ids):
        ok, what = _outcome({s: states.get(f"{GROUP}.{s}_{index}") for s in STEPS})
        if not ok and states.get(f"{GROUP}.rehearse_{index}") == "failed":
            report = ti.xcom_pull(
                task_ids=f"{GROUP}.rehearse", key="rehearsal_report", map_indexes=index
            )
            if report and report.get("reason"):
                what += f": {report['reason']}"
        outcomes[conn_id] = what
        log.info("%s: %s", conn_id, what)
        if not ok:
            failed.append(conn_id)
    if failed:
        raise AirflowFailException(
            f"{len(failed)} of {len(conn_ids)} databases failed: "
            + "; ".join(f"{c} ({outcomes[c]})" for c in failed)
        )
    return outcomes


with DAG(
    dag_id="zenmigrate_fleet_backup_then_migrate",
    schedule=None,
    catchup=False,
    tags=["zenmigrate"],
    params={
        "conn_ids": Param(
            None,
            type=["null", "array"],
            items={"type": "string"},
            description=f"Connection ids; null: the Variable {CONN_IDS_VARIABLE}",
        ),
        "storage_conn_id": Param(DEFAULT_PARAMS["storage_conn_id"], type="string"),
        "script_location": Param(DEFAULT_PARAMS["script_location"], type="string"),
        "backup_prefix": Param(DEFAULT_PARAMS["backup_prefix"], type="string"),
        "fail_on": Param("error", type="string"),
        "max_duration": Param(None, type=["null", "number"]),
        "check_downgrade": Param(False, type="boolean"),
        "max_parallel": Param(
            MAX_PARALLEL,
            type="integer",
            minimum=1,
            description="Databases in flight at once in this run (wait_turn holds the rest)",
        ),
        "poke_interval": Param(
            POKE_INTERVAL,
            type="integer",
            minimum=1,
            description="Seconds between a waiting database's checks for its turn",
        ),
    },
    doc_md=__doc__,
) as dag:
    conn_ids = resolve_conn_ids()
    database.expand(conn_id=conn_ids) >> fleet_report()
