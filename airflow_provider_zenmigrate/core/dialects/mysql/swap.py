"""The MySQL/MariaDB restore's swap, its side databases and its recovery.

A restore loads into a staging database (``zmstage_<label>_<target>``); the swap moves the
staging tables into the target in one RENAME TABLE, parking the target's previous tables in
a trash database (``zmtrash_<label>_<target>``), and re-creates the objects that cannot move.
On MariaDB the whole swap is one server statement (:func:`_swap_block`); a swap that fails
puts the target back (:meth:`TargetSwapMixin._recover`). Side databases left by a restore
that died are dropped by the next restore that succeeds (:func:`drop_stale_side_databases`).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress

import pymysql.err
from sqlalchemy.engine import Engine

from ...dump.model import ObjectSpec
from ...errors import ZenMigrateError
from .catalog import collect_objects, object_drop_statements, table_names
from .grants import ROUTINE_KINDS, RoutineGrant, grant_sql_mode, kept_grants, read_routine_grants
from .session import ServerSession, end_session, server_session
from .statements import LOAD_SQL_MODE, check_object_statement

logger = logging.getLogger(__name__)


# -- side databases -------------------------------------------------------------------------
def side_name(kind: str, label: str, target: str) -> str:
    """The name of a restore's staging (``zmstage``) or trash (``zmtrash``) database."""
    prefix = f"{kind}_{label}_"
    return (prefix + target[: 64 - len(prefix)]).rstrip(" ")


def alive_lock(staging: str) -> str:
    """The lock a restore's session holds while it lives (GET_LOCK dies with the session)."""
    return "zenmigrate:alive:" + hashlib.sha256(staging.encode()).hexdigest()[:40]


def drop_stale_side_databases(engine: Engine, target: str) -> None:
    """Drop what restores of ``target`` killed before their cleanup left behind.

    Called once the target holds a complete restore, so a dead restore's staging database
    and trash (even the previous tables parked in it) are obsolete. Dead means its session's
    lock is free; a running restore or copy still holds it. Failures are only logged.
    """
    try:
        with server_session(engine) as session:
            for (name,) in session.query(
                "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA "
                "WHERE SCHEMA_NAME LIKE %s OR SCHEMA_NAME LIKE %s",
                ("zmstage\\_%", "zmtrash\\_%"),
            ):
                kind, _, rest = name.partition("_")
                labels = [rest[:i] for i, char in enumerate(rest) if char == "_"]
                label = next((x for x in labels if side_name(kind, x, target) == name), None)
                if label is None:
                    continue  # another target's
                lock = alive_lock(side_name("zmstage", label, target))
                if session.scalar("SELECT IS_FREE_LOCK(%s)", (lock,)) != 1:
                    continue  # its restore is running
                logger.warning("dropping %s, left by a restore of %s that died", name, target)
                drop_side_database(session, name)
    except Exception as exc:  # noqa: BLE001 - the restore itself succeeded
        logger.warning("could not remove what dead restores of %s left: %s", target, exc)


def drop_side_databases(engine: Engine, *names: str) -> None:
    """Drop the side databases a restore created, on a new session, except a trash still
    holding the target's previous tables."""
    with server_session(engine) as session:
        for name in names:
            if session.scalar(
                "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
                "AND TABLE_TYPE <> 'VIEW'",
                (name,),
            ) and name.startswith("zmtrash_"):  # the trash
                # Old tables are still parked here (a swap failed and could not put them
                # back): keep them so nothing is lost, and say where they are.
                logger.error("database %s holds the target's previous tables; kept", name)
                continue
            drop_side_database(session, name)


def drop_side_database(session: ServerSession, name: str) -> None:
    """Drop a staging or trash database, its routines first: their DROP revokes the grants
    a swap's rehearsal gave on them (see .grants), which DROP DATABASE would leave."""
    for kind, routine in session.query(
        "SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES "
        "WHERE ROUTINE_SCHEMA = %s",
        (name,),
    ):
        if kind in ROUTINE_KINDS:
            session.execute(f"DROP {kind} IF EXISTS {session.quote(name)}.{session.quote(routine)}")
    session.execute("SET SESSION FOREIGN_KEY_CHECKS = 0")
    session.execute(f"DROP DATABASE IF EXISTS {session.quote(name)}")


def object_settings(settings: dict[str, str]) -> tuple[str, str]:
    """The sql_mode and time_zone an object is created with: its own from the dump, else the
    restore session's (what the object would have got from a plain CREATE in it)."""
    return settings.get("sql_mode", LOAD_SQL_MODE), settings.get("time_zone", "+00:00")


# -- the swap as one statement (MariaDB) -----------------------------------------------------
_MARIADB_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)-MariaDB", re.IGNORECASE)

# A metadata lock the block waits for: ER_LOCK_WAIT_TIMEOUT, ER_LOCK_DEADLOCK.
_LOCK_WAIT_ERRORS = "1205, 1213"


def runs_swap_block(server_version: str) -> bool:
    """Whether the server (its handshake version string) runs the swap as one anonymous block.

    MariaDB has ``BEGIN NOT ATOMIC`` since 10.1.1 and ``EXECUTE IMMEDIATE`` since 10.2.3
    (tested on 10.11 only); MySQL has neither, so it keeps the swap driven by the client.
    """
    match = _MARIADB_VERSION.search(server_version)
    return match is not None and tuple(map(int, match.groups())) >= (10, 2, 3)


def _as_sent(statement: str) -> str:
    """One of our statements as the server receives it from :meth:`ServerSession.execute`: the
    driver's %-formatting (no arguments) turns the ``%%`` of quoted names back into ``%``.
    Needed where the statement travels as data instead."""
    return statement % ()


def _swap_block(with_settings: Sequence[bool]) -> str:
    """The anonymous block that runs the swap's statements as one server statement.

    Statement ``i`` is read from ``@zm_swap_s<i>``; where ``with_settings[i]``, the session
    first takes the sql_mode and time_zone in ``@zm_swap_m<i>`` / ``@zm_swap_z<i>``. The
    block names no object and holds no text from the dump, which reaches the server as data
    only. A server finishes a statement whose client died, but it gives up a metadata lock
    wait about a second after noticing the client is gone, which would stop the block half
    way (objects dropped, tables not renamed): a statement that fails on a lock wait is run
    again until the session's lock_wait_timeout, counted from the start of the block, is
    spent (UNIX_TIMESTAMP(SYSDATE()) does not depend on the time zones set in between).

    It is parsed in the restore session's sql_mode (:data:`LOAD_SQL_MODE`); the only sql_mode
    that would parse it differently is ORACLE. Its last statement restores the session's
    time_zone (which outlives the block; the sql_mode set inside it does not).
    """
    lines = [
        "BEGIN NOT ATOMIC",
        "DECLARE zm_again BOOL DEFAULT FALSE;",
        "DECLARE zm_until DECIMAL(20, 6)",
        "  DEFAULT UNIX_TIMESTAMP(SYSDATE(6)) + @@lock_wait_timeout;",
        f"DECLARE CONTINUE HANDLER FOR {_LOCK_WAIT_ERRORS}",
        "  IF UNIX_TIMESTAMP(SYSDATE(6)) < zm_until THEN SET zm_again = TRUE;",
        "  ELSE RESIGNAL; END IF;",
    ]
    for i, settings in enumerate(with_settings):
        if settings:
            lines.append(f"SET SESSION sql_mode = @zm_swap_m{i}, time_zone = @zm_swap_z{i};")
        lines.append(
            f"REPEAT SET zm_again = FALSE; EXECUTE IMMEDIATE @zm_swap_s{i}; UNTIL NOT zm_again "
            "END REPEAT;"
        )
    lines += [f"SET SESSION sql_mode = '{LOAD_SQL_MODE}', SESSION time_zone = '+00:00';", "END"]
    return "\n".join(lines)


# -- the swap -------------------------------------------------------------------------------
class TargetSwapMixin:
    """The swap half of :class:`~.writer.MySQLRestoreWriter`: replacing the target's tables
    and objects with the staging ones, and putting the target back when that fails.

    A mixin rather than a class of its own because the swap and the loading share the
    writer's state (its session, which a lost connection replaces, the staged objects, the
    side databases it created); the writer sets every attribute declared here.
    """

    session: ServerSession
    target: str
    staging: str
    trash: str
    charset: str
    collation: str
    #: The restored objects (not indexes), checked, in creation order: (record, settings, SQL).
    objects: list[tuple[ObjectSpec, dict[str, str], str]]
    swapped: bool
    created: list[str]
    engine: Engine | None
    grants: list[RoutineGrant]

    def wait_for_bulk_loads(self) -> None:
        """Wait until every row handed to the loader is in (the writer defines this)."""
        raise NotImplementedError

    def _create_in_settings(self, settings: dict[str, str], sql: str) -> None:
        """Run a checked CREATE from the dump in its own sql_mode and time_zone (see
        :func:`object_settings`), then return the session to the restore's."""
        session = self.session
        sql_mode, time_zone = object_settings(settings)
        session.execute("SET SESSION sql_mode = %s", (sql_mode,))
        session.execute("SET SESSION time_zone = %s", (time_zone,))
        try:
            session.execute_dump(sql)
        finally:
            session.execute(f"SET SESSION sql_mode = '{LOAD_SQL_MODE}'")
            session.execute("SET SESSION time_zone = '+00:00'")

    # -- swapping --------------------------------------------------------------------------
    def _drop_objects(self, database: str) -> None:
        """Drop every trigger, event, view and routine of ``database``."""
        for statement in object_drop_statements(self.session, database):
            self.session.execute(statement)

    def _rename_statement(self, moves: list[tuple[str, str, str]]) -> str:
        """One RENAME TABLE statement: MySQL applies all of its renames or none."""
        quote = self.session.quote
        pairs = (
            f"{quote(src)}.{quote(name)} TO {quote(dst)}.{quote(name)}" for src, name, dst in moves
        )
        return "RENAME TABLE " + ", ".join(pairs)

    def _rename(self, moves: list[tuple[str, str, str]]) -> None:
        """Run :meth:`_rename_statement` (RENAME TABLE needs at least one move)."""
        if moves:
            self.session.execute(self._rename_statement(moves))

    def _create_objects(self, objects: list[tuple[ObjectSpec, dict[str, str], str]]) -> None:
        self.session.execute(f"USE {self.session.quote(self.target)}")
        try:
            for _obj, settings, sql in objects:
                self._create_in_settings(settings, sql)
        finally:
            self.session.execute(f"USE {self.session.quote(self.staging)}")

    def swap(self) -> None:
        """Replace the target's tables and objects with the staging ones.

        The tables move in one RENAME TABLE, which is atomic. Views, triggers, routines and
        events cannot move between databases (and RENAME TABLE refuses a table with
        triggers), so the target's are dropped just before the rename and the restored ones
        created just after it, each with its own sql_mode and time_zone.

        On MariaDB those steps are one server statement, an anonymous block
        (:func:`_swap_block`): once the server has it, it runs to the end even if this
        process dies, so a SIGKILL leaves the target exactly the old database (the block
        never reached the server) or exactly the restored one. What remains is a server
        crash inside the block, or a block stopped by the server (KILL, max_statement_time,
        lock_wait_timeout spent) after the client died. Other sessions may see the target
        without its views/triggers/routines while the block runs.

        On MySQL (no anonymous blocks) this process sends the steps one by one: if it dies
        between them, the target has exactly one side's tables but misses some of its
        views/triggers/routines, and the old tables may be left in the
        ``zmtrash_<label>_...`` database. A rerun of the restore repairs the target.

        If a step fails with an error (a CREATE, a lost session), the rename is reversed if it
        happened and the old objects are re-created before the error propagates.

        Table, column and database grants name the tables and stay where they are. Grants on
        routines are revoked by their DROP (see :mod:`.grants`): they are read first,
        rehearsed on the staging routines (an account that cannot give them fails here,
        before the target is touched), and given again on the restored routines of the same
        name and type right after those are created, inside the same block on MariaDB.
        """
        if self.swapped:
            raise ZenMigrateError("swap() was already called")
        self.wait_for_bulk_loads()
        session = self.session
        session.execute(f"USE {session.quote(self.target)}")
        try:
            old_objects = [
                (obj, *check_object_statement(obj)) for obj in collect_objects(session, self.target)
            ]
        finally:
            session.execute(f"USE {session.quote(self.staging)}")
        old_routines = [
            (o.object_type, o.name)
            for o, *_ in old_objects
            if o.object_type.upper() in ROUTINE_KINDS
        ]
        self.grants = read_routine_grants(session, self.target) if old_routines else []
        grants = kept_grants(self.grants, ((o.object_type, o.name) for o, *_ in self.objects))
        old_tables = table_names(self.session, self.target)
        new_tables = table_names(self.session, self.staging)
        try:
            self._grant(grants, self.staging)
        finally:  # rehearsals, and the grants given them (their DROP revokes those)
            self._drop_objects(self.staging)  # triggers would block the rename
        session.execute(
            f"CREATE DATABASE {session.quote(self.trash)} "
            f"CHARACTER SET {session.quote(self.charset)} "
            f"COLLATE {session.quote(self.collation)}"
        )
        self.created.append(self.trash)
        forward = [(self.target, n, self.trash) for n in old_tables]
        forward += [(self.staging, n, self.target) for n in new_tables]
        backward = [(self.target, n, self.staging) for n in new_tables]
        backward += [(self.trash, n, self.target) for n in old_tables]
        if runs_swap_block(session.dbapi.get_server_info()):
            try:
                self._swap_on_server(
                    object_drop_statements(self.session, self.target), forward, grants
                )
            except BaseException:
                try:
                    undo = backward if self._renamed(new_tables) else []
                except Exception:
                    logger.exception(
                        "could not tell whether the failed swap of %s renamed its tables; "
                        "its previous tables may be in %s",
                        self.target,
                        self.trash,
                    )
                else:
                    self._recover(old_objects, undo)
                raise
        else:
            self._drop_objects(self.target)
            try:
                self._rename(forward)
            except BaseException:
                self._recover(old_objects, [])
                raise
            try:
                self._create_objects(self.objects)
                self._grant(grants, self.target)
            except BaseException:
                self._recover(old_objects, backward)
                raise
        self.swapped = True
        session.execute(f"DROP DATABASE {session.quote(self.trash)}")

    def _grant_mode(self) -> str:
        return grant_sql_mode(self.session.dbapi.get_server_info(), LOAD_SQL_MODE)

    def _grant(self, grants: list[RoutineGrant], database: str) -> None:
        """Give ``grants`` on the routines of ``database``, in a sql_mode that never creates
        a missing grantee."""
        if not grants:
            return
        session = self.session
        session.execute("SET SESSION sql_mode = %s", (self._grant_mode(),))
        try:
            for grant in grants:
                session.execute(grant.statement(session.quote, database))
        finally:
            session.execute(f"SET SESSION sql_mode = '{LOAD_SQL_MODE}'")

    def _swap_on_server(
        self,
        drops: list[str],
        forward: list[tuple[str, str, str]],
        grants: list[RoutineGrant],
    ) -> None:
        """Drop the target's objects, rename the tables, create the restored objects and give
        their grants again in one server statement (see :func:`_swap_block`).

        Every statement goes into a user variable of this session first, as a parameter
        (pymysql escapes it with backslashes, right in :data:`LOAD_SQL_MODE`, which has no
        NO_BACKSLASH_ESCAPES); the variables are cleared afterwards. The restored objects'
        statements name no database: they run with the target as the current one.
        """
        session = self.session
        steps: list[tuple[str, tuple[str, str] | None]] = [(_as_sent(d), None) for d in drops]
        if forward:
            steps.append((_as_sent(self._rename_statement(forward)), None))
        steps += [(sql, object_settings(settings)) for _obj, settings, sql in self.objects]
        grant_settings = (self._grant_mode(), "+00:00")
        steps += [
            (_as_sent(g.statement(session.quote, self.target)), grant_settings) for g in grants
        ]
        names: list[str] = []
        session.execute(f"USE {session.quote(self.target)}")
        try:
            for i, (statement, settings) in enumerate(steps):
                values = [statement, *(settings or ())]
                step_names = [f"@zm_swap_{kind}{i}" for kind in "smz"[: len(values)]]
                names += step_names
                session.execute("SET " + ", ".join(f"{n} = %s" for n in step_names), values)
            try:
                session.execute(_swap_block([settings is not None for _, settings in steps]))
            except pymysql.err.MySQLError:
                raise
            except BaseException:
                # Interrupted while the server runs the block (a signal, a task timeout): the
                # connection is out of step with the server. Closed, it makes the recovery
                # end the block on a new session before looking (see _live_session).
                with suppress(Exception):
                    session.dbapi.close()
                raise
        finally:
            # The block's own last statement did not run if it failed; a lost session took
            # its variables and settings with it.
            with suppress(pymysql.err.MySQLError):
                cleared = ", ".join(f"{n} = NULL" for n in names)
                session.execute(
                    f"SET {cleared + ', ' if cleared else ''}"
                    f"SESSION sql_mode = '{LOAD_SQL_MODE}', SESSION time_zone = '+00:00'"
                )
                session.execute(f"USE {session.quote(self.staging)}")

    def _renamed(self, new_tables: list[str]) -> bool:
        """Whether the swap's RENAME TABLE happened, asked after the block failed.

        The rename is atomic: before it the trash database is empty and staging holds all the
        new tables, after it the trash holds the old tables and staging none of the new ones.
        """
        with self._live_session():
            if table_names(self.session, self.trash):
                return True
            return bool(new_tables) and not set(new_tables) & set(
                table_names(self.session, self.staging)
            )

    @contextmanager
    def _live_session(self) -> Iterator[None]:
        """Run the block on the restore's session, or on a new one if that one is gone (once
        the server has ended the lost one, see :func:`end_session`)."""
        try:
            self.session.dbapi.ping(reconnect=False)
        except Exception:
            if self.engine is None:
                raise
        else:
            yield
            return
        lost = self.session
        with server_session(self.engine) as fresh:
            fresh.dbapi.autocommit(True)
            end_session(fresh, lost.dbapi.thread_id())
            fresh.execute(f"USE {fresh.quote(self.staging)}")
            self.session = fresh
            try:
                yield
            finally:
                self.session = lost

    def _recover(
        self,
        old_objects: list[tuple[ObjectSpec, dict[str, str], str]],
        backward: list[tuple[str, str, str]],
    ) -> None:
        """Put the target back as it was, as far as possible; errors here are logged.

        The likeliest reason a swap fails is that the server dropped the restore's session
        (killed, timed out, restarted): then the target is put back on a new one.
        """
        try:
            with self._live_session():
                self._drop_objects(self.target)
                self._rename(backward)
                self._create_objects(old_objects)
                routines = ((o.object_type, o.name) for o, *_ in old_objects)
                self._grant(kept_grants(self.grants, routines), self.target)
        except Exception:
            logger.exception(
                "could not fully restore %s after a failed swap; its previous tables may be in %s",
                self.target,
                self.trash,
            )
