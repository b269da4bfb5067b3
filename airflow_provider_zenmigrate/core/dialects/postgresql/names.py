"""Quoting, and the names records give PostgreSQL relations.

A restore builds its own statements around names a dump carries, so every identifier and
string it writes goes through :func:`quote_ident` or :func:`quote_literal`: always quoted,
never trusted to be plain.
"""

from __future__ import annotations


def quote_ident(name: str) -> str:
    """Quote an identifier, always."""
    return '"' + name.replace('"', '""') + '"'


def qualified_name(schema: str, name: str) -> str:
    """A schema-qualified name, quoted."""
    return f"{quote_ident(schema)}.{quote_ident(name)}"


def quote_literal(value: str) -> str:
    """A string literal (``standard_conforming_strings`` is on: backslashes are plain)."""
    return "'" + value.replace("'", "''") + "'"


def display_name(schema: str, name: str) -> str:
    """A relation's name in records, trailers and reports: bare in ``public`` (as dumps of one
    schema always wrote it), ``schema.name`` elsewhere."""
    return name if schema == "public" else f"{schema}.{name}"


def bare_name(schema: str, name: str) -> str:
    """A relation's own name from its record's (:func:`display_name`)."""
    prefix = f"{schema}."
    return name[len(prefix) :] if schema != "public" and name.startswith(prefix) else name


#: Prefix of the schemas a staged restore builds (its label follows: see :mod:`.staging`).
STAGE_PREFIX = "zm_stage_"


def is_staging_schema(name: str) -> bool:
    """A schema a staged restore kept for its next attempt (never part of a backup)."""
    return name.startswith(STAGE_PREFIX)
