"""One SQL lexer for every statement check, configured per dialect by :class:`LexerRules`.

A dump's statements are untrusted; the checks in :mod:`.dump.safety` decide on tokens, so the
tokens must be the ones the server will see. Dialects differ in exactly the places an attack
hides a second statement: which quotes make strings or names, whether a backslash escapes a
quote, which comments exist and where they end, whether comments nest, MySQL's ``/*! */``
comments (whose contents MySQL runs) and PostgreSQL's dollar quoting. Each difference is a
field of :class:`LexerRules`; :func:`LexerRules.mysql`, :data:`POSTGRESQL` and
:data:`SQLITE` lex as those servers do, and :data:`PORTABLE` / :data:`STANDARD` are the
dialect-neutral lexings that every check also runs, so a statement must pass under each.

Tokens are :class:`Token` records ``(kind, text)``; the kinds are listed at :data:`KINDS`.
"""

from __future__ import annotations

import functools
import re
import string
from dataclasses import dataclass
from typing import Literal, NamedTuple

from .errors import UnsafeDumpError

#: Token kinds. Names: ``word`` (unquoted), ``double`` ("..."), ``backtick`` (`...`),
#: ``bracket`` ([...], SQLite). Strings: ``single`` ('...', E'...', and MySQL's "..." unless
#: ANSI_QUOTES), ``dollar`` ($tag$...$tag$). ``semicolon``, ``other`` (any other character).
#: Not significant: ``space``, ``comment``, ``version_open`` / ``version_close`` (the
#: markers of a MySQL ``/*! ... */`` comment, whose contents are lexed as code).
KINDS = frozenset(
    {"word", "double", "backtick", "bracket", "single", "dollar", "semicolon", "other",
     "space", "comment", "version_open", "version_close"}
)  # fmt: skip
NAME_KINDS = frozenset({"word", "double", "backtick", "bracket"})
_INSIGNIFICANT = frozenset({"space", "comment", "version_open", "version_close"})


class Token(NamedTuple):
    """One token: its kind (see :data:`KINDS`) and its text exactly as written."""

    kind: str
    text: str

    def unquoted(self) -> str:
        """A quoted name without its quotes (doubled quotes undone); anything else as is."""
        if self.kind == "double":
            return self.text[1:-1].replace('""', '"')
        if self.kind == "backtick":
            return self.text[1:-1].replace("``", "`")
        if self.kind == "bracket":
            return self.text[1:-1]
        return self.text


@dataclass(frozen=True)
class LexerRules:
    """How one dialect (or one session setting of it) splits a statement into tokens."""

    #: Which lexing this is, for messages: "portable", "standard", "mysql", "postgresql", ...
    dialect: str
    #: A backslash escapes the next character in '...' strings (and in MySQL's "..." strings).
    backslash_escapes: bool
    #: ``E'...'`` strings, in which a backslash escapes (PostgreSQL).
    escape_strings: bool = False
    #: ``"..."`` is a name (else a string: MySQL without ANSI_QUOTES).
    double_quoted_names: bool = True
    #: Backticks quote names (MySQL, SQLite).
    backticks: bool = True
    #: ``[...]`` quotes names (SQLite).
    brackets: bool = False
    #: ``#`` starts a comment to the end of the line (MySQL).
    hash_comments: bool = False
    #: ``--`` starts a comment only when followed by a space or control character (MySQL).
    dash_comment_needs_space: bool = False
    #: Characters that end a ``--`` / ``#`` comment (PostgreSQL also ends one at ``\r``).
    line_ends: str = "\n"
    #: Block comments nest (PostgreSQL).
    nested_comments: bool = False
    #: ``/*! ... */`` and ``/*M! ... */``: "code" (MySQL runs them: the markers become
    #: version_open / version_close and the contents are lexed), "refuse" (any comment
    #: starting ``/*!`` or ``/*M`` is an error), or "comment" (an ordinary comment).
    version_comments: Literal["code", "refuse", "comment"] = "comment"
    #: ``$$...$$`` and ``$tag$...$tag$`` strings (PostgreSQL).
    dollar_quotes: bool = False
    #: A dollar quote's tag may hold non-ASCII letters (PostgreSQL's rule; the portable
    #: lexings keep the ASCII tags they always had).
    unicode_dollar_tags: bool = False
    #: Unquoted names may start with a digit or ``$``; numbers lex as words (MySQL: ``2db``).
    digit_words: bool = False
    #: The characters that separate tokens: the server's own (ASCII) or any Unicode space.
    spaces: str = r"\s"
    #: An unterminated quote or comment is an error; otherwise its opening character is an
    #: ``other`` token and lexing goes on (the portable lexings, as they always did).
    strict: bool = True

    @classmethod
    def mysql(cls, sql_mode: str = "") -> LexerRules:
        """MySQL / MariaDB under ``sql_mode`` (ANSI_QUOTES, ANSI, NO_BACKSLASH_ESCAPES)."""
        modes = set(sql_mode.upper().replace(" ", "").split(","))
        return _mysql("ANSI_QUOTES" in modes or "ANSI" in modes, "NO_BACKSLASH_ESCAPES" in modes)


@functools.cache
def _mysql(ansi_quotes: bool, no_backslash_escapes: bool) -> LexerRules:
    return LexerRules(
        dialect="mysql",
        backslash_escapes=not no_backslash_escapes,
        double_quoted_names=ansi_quotes,
        hash_comments=True,
        dash_comment_needs_space=True,
        version_comments="code",
        digit_words=True,
        spaces=_SERVER_SPACES,
    )


_SERVER_SPACES = r" \t\n\r\f\v"

#: PostgreSQL as the restore's sessions run (standard_conforming_strings on): backslashes are
#: literal except in E'...', comments nest, ``--`` comments end at either line end.
POSTGRESQL = LexerRules(
    dialect="postgresql",
    backslash_escapes=False,
    escape_strings=True,
    backticks=False,
    line_ends="\n\r",
    nested_comments=True,
    dollar_quotes=True,
    unicode_dollar_tags=True,
    spaces=_SERVER_SPACES,
)
#: SQLite: standard strings, "..." / `...` / [...] names, no dollar quoting.
SQLITE = LexerRules(dialect="sqlite", backslash_escapes=False, brackets=True, spaces=_SERVER_SPACES)
#: The dialect-neutral lexing every statement check runs first: backslash escapes in '...',
#: dollar quotes, and any comment MySQL would execute refused outright.
PORTABLE = LexerRules(
    dialect="portable",
    backslash_escapes=True,
    version_comments="refuse",
    dollar_quotes=True,
    strict=False,
)
#: The portable lexing with standard strings (backslashes literal except in E'...'): the
#: references are checked in it too, so a backslash cannot hide one from either reading.
STANDARD = LexerRules(
    dialect="standard",
    backslash_escapes=False,
    escape_strings=True,
    version_comments="refuse",
    dollar_quotes=True,
    strict=False,
)


def _quoted(quote: str, escapes: bool) -> str:
    q = re.escape(quote)
    return rf"{q}(?:[^{q}\\]|\\.|{q}{q})*{q}" if escapes else rf"{q}(?:[^{q}]|{q}{q})*{q}"


_LETTERS = string.ascii_letters + "_"
_DIGITS = string.digits


def _beyond_ascii(ascii_members: str) -> str:
    """A character class of ``ascii_members`` and every non-ASCII character, written as the
    ASCII characters it leaves out: the same set, but a class with a range up to U+10FFFF
    takes ``re`` about 6 ms to compile (every restore compiles three lexings), this one not
    a tenth of that."""
    left_out = (chr(c) for c in range(128) if chr(c) not in ascii_members)
    return "[^" + "".join(f"\\x{ord(c):02x}" for c in left_out) + "]"


@functools.cache
def _pattern(rules: LexerRules) -> re.Pattern[str]:
    """The master pattern of ``rules``: one alternative per token kind, tried in order."""
    line = rf"[^{re.escape(rules.line_ends)}]*"
    dash = r"--(?=[\s\x00-\x1f]|\Z)" if rules.dash_comment_needs_space else "--"
    dash = rf"(?:\#|{dash})" if rules.hash_comments else dash
    single = _quoted("'", rules.backslash_escapes)
    if rules.escape_strings:
        single = rf"[Ee]{_quoted(chr(39), True)}|{single}"
    tag = f"{_beyond_ascii(_LETTERS)}{_beyond_ascii(_LETTERS + _DIGITS)}*"
    if not rules.unicode_dollar_tags:
        tag = r"[A-Za-z_][A-Za-z0-9_]*"
    parts = [rf"(?P<space>[{rules.spaces}]+)", rf"(?P<comment>{dash}{line})"]
    if rules.version_comments == "code":
        parts.append(r"(?P<version_open>/\*M?!\d*)")
    parts.append(r"(?P<block>/\*)" if rules.nested_comments else r"(?P<block>/\*.*?\*/)")
    if rules.version_comments == "code":
        parts.append(r"(?P<version_close>\*/)")
    if rules.dollar_quotes:
        parts.append(rf"(?P<dollar>\$\$.*?\$\$|\$(?P<tag>{tag})\$.*?\$(?P=tag)\$)")
    parts.append(rf"(?P<single>{single})")
    if rules.double_quoted_names:
        parts.append(rf"(?P<double>{_quoted(chr(34), False)})")
    else:
        parts.append(rf"(?P<dstring>{_quoted(chr(34), rules.backslash_escapes)})")
    if rules.backticks:
        parts.append(r"(?P<backtick>`(?:[^`]|``)*`)")
    if rules.brackets:
        parts.append(r"(?P<bracket>\[[^\]]*\])")
    parts.append(r"(?P<semicolon>;)")
    first = _LETTERS + (_DIGITS + "$" if rules.digit_words else "")
    parts.append(rf"(?P<word>{_beyond_ascii(first)}{_beyond_ascii(_LETTERS + _DIGITS + '$')}*)")
    parts.append(r"(?P<other>.)")
    return re.compile("|".join(parts), re.DOTALL)


_NESTING = re.compile(r"/\*|\*/")


def _nested_comment_end(sql: str, pos: int) -> int:
    """The end of the nested block comment opened at ``pos``; -1 if it never closes."""
    depth = 0
    for mark in _NESTING.finditer(sql, pos):
        depth += 1 if mark.group() == "/*" else -1
        if depth == 0:
            return mark.end()
    return -1


def _unterminated(sql: str, pos: int, kind: str, end: int, rules: LexerRules) -> bool:
    """Whether the token at ``pos`` opens a quote or comment that never ends: an ``other``
    character that opens one, or an ``E`` before a quote (PostgreSQL's E'...' is one token;
    had it ended, it would have matched as a string)."""
    if kind == "word":
        return rules.escape_strings and end - pos == 1 and sql[pos : end + 1] in ("E'", "e'")
    if kind != "other":
        return False
    char = sql[pos]
    if char in "'\"" or sql.startswith("/*", pos):
        return True
    if (char == "`" and rules.backticks) or (char == "[" and rules.brackets):
        return True
    if char == "$" and rules.dollar_quotes:
        return re.match(r"\$(?:[^\W\d$]\w*)?\$", sql[pos:]) is not None
    return False


#: Lexings kept (:func:`lex`): a restore checks each statement of a record twice, when the
#: record is read and when the writer applies it, in three lexings each, a few statements
#: apart; a small cache halves the lexing of a restore of many tables (issue 27).
LEXINGS_KEPT = 32


def lex(sql: str, rules: LexerRules) -> list[Token]:
    """Every token of ``sql`` under ``rules``, comments and spaces included.

    Raises :class:`UnsafeDumpError` where the statement cannot be lexed safely: a strict
    lexing's unterminated quote or comment, a MySQL version comment that nests or never
    closes, or (``version_comments="refuse"``) a comment MySQL would execute.
    """
    return list(_lex(sql, rules))


#: Token kinds the scan takes as they match: nothing about them depends on what is around.
_PLAIN_KINDS = frozenset(
    {"space", "comment", "single", "double", "backtick", "bracket", "semicolon", "dollar"}
)
#: The characters with which an ``other`` token may open an unterminated quote or comment.
_OPENERS = frozenset("'\"/`[$")


@functools.lru_cache(maxsize=LEXINGS_KEPT)
def _lex(sql: str, rules: LexerRules) -> tuple[Token, ...]:
    pattern = _pattern(rules)
    out: list[Token] = []
    append = out.append
    make = tuple.__new__  # Token(kind, text) without NamedTuple's Python-level __new__
    strict = rules.strict
    pos, in_version = 0, False
    # The tokens come from one scan of the master pattern (its loop runs in C); only the
    # kinds below that need a look of their own leave the fast path, and a nested comment,
    # whose end the pattern cannot find, restarts the scan after it.
    while pos < len(sql):
        for match in pattern.finditer(sql, pos):
            kind = match.lastgroup or "other"
            start, end = match.span()
            if kind in _PLAIN_KINDS:
                append(make(Token, (kind, sql[start:end])))
                continue
            if kind == "word" or kind == "other":
                # Only a one-letter word (E before a quote) or an opening character can open
                # a quote or comment that never ends.
                if (
                    strict
                    and end - start == 1
                    and (kind == "word" or sql[start] in _OPENERS)
                    and _unterminated(sql, start, kind, end, rules)
                ):
                    raise UnsafeDumpError(f"unterminated quote or comment at offset {start}")
            elif kind == "tag":
                kind = "dollar"
            elif kind == "dstring":
                kind = "single"  # MySQL without ANSI_QUOTES: "..." is a string
            elif kind == "block":
                kind = "comment"
                if rules.nested_comments:
                    end = _nested_comment_end(sql, start)
                    if end < 0:
                        raise UnsafeDumpError(f"unterminated quote or comment at offset {start}")
                if rules.version_comments == "refuse" and sql[start + 2 : start + 3] in ("!", "M"):
                    raise UnsafeDumpError(f"executable comment at offset {start}")
                if end != match.end():  # the pattern's scan stopped inside the comment
                    append(make(Token, (kind, sql[start:end])))
                    pos = end
                    break
            elif kind == "version_open":
                if in_version:
                    raise UnsafeDumpError("nested version comment")
                in_version = True
            elif kind == "version_close":
                if not in_version:
                    kind = "other"
                in_version = False
            append(make(Token, (kind, sql[start:end])))
        else:
            break
    if in_version:
        raise UnsafeDumpError("unterminated version comment")
    return tuple(out)


def significant(tokens: list[Token]) -> list[Token]:
    """The tokens the server acts on: no spaces, comments or version-comment markers."""
    return [t for t in tokens if t.kind not in _INSIGNIFICANT]


def statements(tokens: list[Token]) -> list[list[Token]]:
    """``tokens`` cut after each semicolon, where the server ends a statement (one in a
    string, name or comment is inside that token): each piece ends with its semicolon (the
    last may have none), and the pieces together are ``tokens`` (their texts give the SQL)."""
    pieces: list[list[Token]] = [[]]
    for token in tokens:
        pieces[-1].append(token)
        if token.kind == "semicolon":
            pieces.append([])
    return [piece for piece in pieces if piece]


def significant_tokens(sql: str, rules: LexerRules) -> list[Token]:
    """:func:`lex` then :func:`significant`, without the trailing semicolons."""
    tokens = significant(lex(sql, rules))
    while tokens and tokens[-1].kind == "semicolon":
        tokens.pop()
    return tokens


def inline_version_comments(sql: str, rules: LexerRules) -> str:
    """``/*!50100 X */`` becomes `` X ``: MySQL runs the contents of version comments
    whatever their version number, so the restore runs (and checks) exactly them."""
    tokens = lex(sql, rules)
    if not any(t.kind == "version_open" for t in tokens):
        return sql
    return "".join(" " if t.kind in ("version_open", "version_close") else t.text for t in tokens)
