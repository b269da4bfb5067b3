"""Our own rules for MySQL/MariaDB migrations: what rebuilds a table or blocks its writes.

There is no squawk for MySQL, so these rules read the revision's offline SQL token by token
(:mod:`...sql_lexer`, the lexer the restore trusts) and flag what the MariaDB documentation on
online DDL says costs a table copy or a write lock. They judge the statement alone; the probe
(:mod:`..probes.mysql`) measures what the server really did on the scratch copy.

What the rules rest on (MariaDB 10.11; each refusal quoted was checked on the server here):

- a column's new data type cannot be applied in place ("Cannot change column type. Try
  ALGORITHM=COPY"), and NULL to NOT NULL rebuilds; only some changes are instant (a longer
  VARCHAR, a wider integer...), which the statement alone cannot tell apart, so every
  MODIFY/CHANGE of a column definition is flagged as a possible rebuild;
- ``ALGORITHM=COPY`` needs at least ``LOCK=SHARED`` ("COPY algorithm requires a lock");
- ADD/DROP PRIMARY KEY, ``FORCE``, ``ENGINE=``, ``ROW_FORMAT=``, ``CONVERT TO CHARACTER SET``
  and ``OPTIMIZE TABLE`` rebuild the whole table;
- ADD FOREIGN KEY copies the table unless foreign_key_checks is off ("Adding foreign keys
  needs foreign_key_checks=OFF. Try ALGORITHM=COPY");
- FULLTEXT and SPATIAL index builds and a new AUTO_INCREMENT column refuse ``LOCK=NONE``;
- ADD COLUMN, DROP COLUMN and plain CREATE INDEX are instant or online since MariaDB 10.3/10.4
  and are not flagged.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ...errors import UnsafeDumpError
from ...sql_lexer import LexerRules, Token, lex, significant, statements
from ..model import LintFinding
from .base import Linter, shorten

#: Alembic's own bookkeeping: never a risk worth reporting.
_SKIP_TABLES = frozenset({"alembic_version"})
_NAME_KINDS = ("word", "backtick", "double")


@dataclass(frozen=True)
class Statement:
    """One statement of the offline SQL: its significant tokens and its text."""

    tokens: tuple[Token, ...]
    text: str


def split_statements(sql: str, rules: LexerRules | None = None) -> list[Statement]:
    """The statements of ``sql``, split at the semicolons the server would split at."""
    out: list[Statement] = []
    for piece in statements(lex(sql, rules or LexerRules.mysql(""))):
        sig = [token for token in significant(piece) if token.kind != "semicolon"]
        if sig:
            start = piece.index(sig[0])  # the text without the comments before it
            skip = ("comment", "semicolon")
            text = "".join(token.text for token in piece[start:] if token.kind not in skip)
            out.append(Statement(tuple(sig), text.strip()))
    return out


def words_of(tokens: Sequence[Token]) -> list[str]:
    """Upper-case keywords; a quoted name becomes ``"`name"`` so it never reads as one."""
    out = []
    for token in tokens:
        if token.kind == "word":
            out.append(token.text.upper())
        elif token.kind in ("backtick", "double"):
            out.append("`" + token.unquoted())
        else:
            out.append(token.text)
    return out


def _name_at(tokens: Sequence[Token], at: int) -> str | None:
    """The name starting at ``at``, without a ``db.`` qualifier."""
    if at >= len(tokens) or tokens[at].kind not in _NAME_KINDS:
        return None
    name = tokens[at].unquoted()
    while (
        at + 2 < len(tokens) and tokens[at + 1].text == "." and tokens[at + 2].kind in _NAME_KINDS
    ):
        at += 2
        name = tokens[at].unquoted()
    return name


def _after(words: list[str], keyword: str, skip: Sequence[str] = ()) -> int | None:
    """The position after ``keyword`` (and any of ``skip``), or None without it."""
    if keyword not in words:
        return None
    at = words.index(keyword) + 1
    while at < len(words) and words[at] in skip:
        at += 1
    return at


def statement_table(tokens: Sequence[Token]) -> str | None:
    """The table a statement acts on: ALTER/OPTIMIZE/TRUNCATE/RENAME TABLE, CREATE/DROP
    INDEX ... ON, UPDATE, DELETE FROM, INSERT/REPLACE INTO; None for anything else."""
    words = words_of(tokens)
    first = words[0] if words else ""
    at: int | None = None
    if first in ("ALTER", "OPTIMIZE", "RENAME", "TRUNCATE") and "TABLE" in words[:3]:
        at = _after(words, "TABLE", ("IF", "EXISTS", "NO_WRITE_TO_BINLOG", "LOCAL"))
    elif first in ("CREATE", "DROP") and "INDEX" in words[:6]:
        at = _after(words, "ON")
    elif first == "TRUNCATE":
        at = 1
    elif first == "UPDATE":
        at = _after(words, "UPDATE", ("LOW_PRIORITY", "IGNORE"))
    elif first == "DELETE":
        at = _after(words, "FROM")
    elif first in ("INSERT", "REPLACE"):
        at = _after(words, "INTO")
    return None if at is None else _name_at(tokens, at)


def _clauses(words: list[str]) -> Iterator[list[str]]:
    """An ALTER TABLE's comma-separated clauses (commas inside parentheses do not split)."""
    depth, clause = 0, list[str]()
    for word in words:
        depth += (word == "(") - (word == ")")
        if word == "," and depth == 0:
            yield clause
            clause = []
        else:
            clause.append(word)
    yield clause


def _option(words: list[str], name: str) -> str | None:
    """The value of ``NAME [=] value`` (ALGORITHM, LOCK...) anywhere in ``words``."""
    at = _after(words, name, ("=",))
    return words[at] if at is not None and at < len(words) else None


def _finding(rule: str, message: str, stmt: Statement) -> LintFinding:
    statement = shorten(stmt.text, 200)
    return LintFinding(rule=rule, message=message, level="warning", statement=statement)


class MySQLLinter(Linter):
    """Flags statements that rebuild a table, block its writes, or break running code."""

    name = "zenmigrate MySQL rules"

    def __init__(self, sql_mode: str = "") -> None:
        self.rules = LexerRules.mysql(sql_mode)

    def lint(self, sql: str) -> list[LintFinding]:
        try:
            statements = split_statements(sql, self.rules)
        except UnsafeDumpError as exc:
            stmt = Statement((), sql)
            return [_finding("unlintable", f"the SQL does not lex as MySQL: {exc}", stmt)]
        findings: list[LintFinding] = []
        for stmt in statements:
            table = statement_table(stmt.tokens)
            if table is not None and table.lower() in _SKIP_TABLES:
                continue
            findings.extend(_check(stmt, table or "?"))
        return findings


def _check(stmt: Statement, table: str) -> list[LintFinding]:
    words = words_of(stmt.tokens)
    first = words[0] if words else ""
    if first == "ALTER" and "TABLE" in words[1:3]:
        return _check_alter(stmt, words[words.index("TABLE") + 1 :], table)
    if first == "CREATE" and "INDEX" in words[:4]:
        kind = next((w for w in words[1:3] if w in ("FULLTEXT", "SPATIAL")), None)
        out = _lock_options(stmt, words, table)
        if kind:
            out.append(_blocks(stmt, table, f"a {kind} index cannot be built with LOCK=NONE"))
        return out
    if first == "OPTIMIZE":
        return [_finding("table-rebuild", f"OPTIMIZE TABLE recreates {table}", stmt)]
    if first == "RENAME" and words[1:2] == ["TABLE"]:
        return [_rename(stmt, f"RENAME TABLE renames {table}")]
    if first in ("UPDATE", "DELETE") and "WHERE" not in words:
        return [
            _finding(
                "unbounded-update",
                f"{first} of every row of {table} (no WHERE): it locks every row until it "
                "commits, in one long transaction",
                stmt,
            )
        ]
    return []


def _rename(stmt: Statement, what: str) -> LintFinding:
    return _finding("rename", f"{what}: running code that uses the old name breaks", stmt)


def _blocks(stmt: Statement, table: str, why: str) -> LintFinding:
    return _finding("blocks-writes", f"{why}: writes to {table} wait for it", stmt)


def _lock_options(stmt: Statement, words: list[str], table: str) -> list[LintFinding]:
    """``ALGORITHM=COPY`` and ``LOCK=SHARED|EXCLUSIVE``, wherever the statement has them."""
    out: list[LintFinding] = []
    if _option(words, "ALGORITHM") == "COPY":
        out.append(_finding("table-rebuild", f"ALGORITHM=COPY copies {table} row by row", stmt))
        out.append(_blocks(stmt, table, "ALGORITHM=COPY needs at least LOCK=SHARED"))
    lock = _option(words, "LOCK")
    if lock in ("SHARED", "EXCLUSIVE"):
        what = "writes" if lock == "SHARED" else "reads and writes"
        out.append(_finding("blocks-writes", f"LOCK={lock} blocks {what} on {table}", stmt))
    return out


def _check_alter(stmt: Statement, rest: list[str], table: str) -> list[LintFinding]:
    out: list[LintFinding] = []
    for clause in _clauses(rest[1:]):  # rest[0] is the table's name
        for why in _rebuilds(clause):
            out.append(_finding("table-rebuild", f"{why}: {table} is rebuilt", stmt))
        for why in _write_blockers(clause):
            out.append(_blocks(stmt, table, why))
        out.extend(_breaks_code(clause, stmt, table))
    return out + _lock_options(stmt, rest, table)


def _rebuilds(words: list[str]) -> list[str]:
    """Why one ALTER TABLE clause rebuilds (or may rebuild) the table."""
    verb = words[0] if words else ""
    pairs = list(zip(words, words[1:], strict=False))
    if verb in ("ADD", "DROP") and ("PRIMARY", "KEY") in pairs[:4]:
        return [f"{verb} PRIMARY KEY"]
    if verb == "ADD" and ("FOREIGN", "KEY") in pairs[:4]:
        return ["ADD FOREIGN KEY (with foreign_key_checks on it needs ALGORITHM=COPY)"]
    if verb in ("MODIFY", "CHANGE"):
        return [
            f"{verb} COLUMN gives a column its whole definition again; a new type or NOT NULL "
            "rebuilds the table unless it is one of the instant changes (a longer VARCHAR...)"
        ]
    if words[:2] == ["CONVERT", "TO"]:
        return ["CONVERT TO CHARACTER SET"]
    if verb in ("FORCE", "ENGINE", "ROW_FORMAT"):
        return [verb if verb == "FORCE" else f"{verb}="]
    return []


def _write_blockers(words: list[str]) -> list[str]:
    """Why one ALTER TABLE clause keeps writes waiting, besides ALGORITHM/LOCK options."""
    if words[:1] != ["ADD"]:
        return []
    if words[:2] == ["ADD", "FOREIGN"] or ("FOREIGN", "KEY") in zip(words, words[1:], strict=False):
        return ["ADD FOREIGN KEY copies the table with LOCK=SHARED"]
    kind = next((w for w in words[1:3] if w in ("FULLTEXT", "SPATIAL")), None)
    if kind:
        return [f"a {kind} index cannot be built with LOCK=NONE"]
    if "AUTO_INCREMENT" in words:
        return ["adding an AUTO_INCREMENT column cannot be done with LOCK=NONE"]
    return []


_NOT_COLUMNS = frozenset(
    {"INDEX", "KEY", "CONSTRAINT", "PRIMARY", "UNIQUE", "FOREIGN", "FULLTEXT", "SPATIAL",
     "CHECK", "PARTITION", "PERIOD", "SYSTEM"}
)  # fmt: skip


def _breaks_code(words: list[str], stmt: Statement, table: str) -> list[LintFinding]:
    """Renames, and NOT NULL columns without a default: they break the running code."""
    verb = words[0] if words else ""
    if verb == "RENAME" and words[1:2] == ["COLUMN"]:
        return [_rename(stmt, f"a column of {table} is renamed")]
    if verb == "RENAME" and words[1:2] not in (["INDEX"], ["KEY"]):
        return [_rename(stmt, f"{table} is renamed")]
    if verb == "CHANGE":
        at = 1 + (words[1:2] == ["COLUMN"])
        if (
            at + 1 < len(words)
            and words[at].lstrip("`").lower() != words[at + 1].lstrip("`").lower()
        ):
            return [_rename(stmt, f"a column of {table} is renamed")]
    if verb == "ADD" and words[1:2] != [] and words[1] not in _NOT_COLUMNS:
        pairs = list(zip(words, words[1:], strict=False))
        if ("NOT", "NULL") in pairs and "DEFAULT" not in words and "AUTO_INCREMENT" not in words:
            return [
                _finding(
                    "adding-required-column",
                    f"a NOT NULL column without DEFAULT is added to {table}: existing rows get "
                    "the type's implicit default, and inserts by running code that does not "
                    "set it fail in strict mode",
                    stmt,
                )
            ]
    return []
