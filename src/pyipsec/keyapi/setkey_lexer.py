"""Tokens of the setkey(8) configuration language (ipsec-tools / KAME syntax).

The language is small: words (commands, flags, addresses, numbers, algorithm names),
double-quoted strings (keys, security-context names), and the punctuation ``;``,
``/``, ``[`` and ``]``. ``#`` starts a comment that runs to the end of the line;
newlines are plain white space, so a command may continue over several lines until
its ``;``. A backslash before a newline is accepted as white space too, because files
written for a shell heredoc often carry one.

Every token keeps its line, column and character offsets: the parser reports errors
as ``file:line:column`` and rebuilds policy requests (``esp/tunnel/a-b/require``)
from the exact source text of adjacent tokens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pyipsec.errors import ConfigError

__all__ = ["SetkeyError", "Token", "describe", "show", "tokenize"]

WORD = "word"
STRING = "string"
EOF = "eof"
PUNCT = frozenset(";/[]")

# Characters a bare word may hold: letters and digits, and the punctuation addresses
# (":" "." "%"), algorithm names and flags ("-"), ICMP type,code (",") and policy
# priorities ("def+5") need.
_WORD_RE = re.compile(r"[A-Za-z0-9:._%,+\-]+")
_HEX_RE = re.compile(r"0[xX][0-9A-Fa-f]*")
# A hex word longer than a 32-bit number is most likely key material: never echo it.
_MAX_ECHO_HEX_DIGITS = 8
_MAX_ECHO_CHARS = 40


class SetkeyError(ConfigError):
    """A setkey file that does not follow the grammar.

    The message reads ``file:line:column: expected X, got Y``; keys never appear in it.
    """

    def __init__(self, filename: str, line: int, column: int, message: str) -> None:
        super().__init__(f"{filename}:{line}:{column}: {message}")
        self.filename = filename
        self.line = line
        self.column = column
        self.reason = message


@dataclass(frozen=True, slots=True)
class Token:
    """One token: ``kind`` is ``word``, ``string``, ``eof`` or the punctuation itself."""

    kind: str
    text: str
    line: int
    column: int
    start: int
    end: int

    def is_word(self, *values: str) -> bool:
        return self.kind == WORD and (not values or self.text in values)


def describe(token: Token) -> str:
    """How an error message names ``token`` without leaking key material."""
    if token.kind == EOF:
        return "end of input"
    if token.kind == STRING:
        return "a quoted string"
    if token.kind != WORD:
        return f"'{token.text}'"
    return show(token.text)


def show(text: str) -> str:
    """Quote a piece of source for an error message, hiding what looks like a hex key."""
    if not text:
        return "nothing"
    if _HEX_RE.fullmatch(text) and len(text) - 2 > _MAX_ECHO_HEX_DIGITS:
        return f"a hex string of {len(text) - 2} digits"
    if len(text) > _MAX_ECHO_CHARS:
        return f"'{text[:_MAX_ECHO_CHARS]}...'"
    return f"'{text}'"


def tokenize(text: str, filename: str = "<stdin>") -> list[Token]:
    """Split ``text`` into tokens; the list always ends with one ``eof`` token."""
    tokens: list[Token] = []
    pos = 0
    line = 1
    line_start = 0
    size = len(text)
    while pos < size:
        ch = text[pos]
        if ch == "\n":
            pos += 1
            line += 1
            line_start = pos
        elif ch in " \t\r\f\v":
            pos += 1
        elif ch == "\\" and text.startswith("\n", pos + 1):
            pos += 1  # the newline itself is counted on the next round
        elif ch == "\\" and text.startswith("\r\n", pos + 1):
            pos += 2
        elif ch == "#":
            newline = text.find("\n", pos)
            pos = size if newline < 0 else newline
        elif ch == '"':
            close = text.find('"', pos + 1)
            if close < 0:
                raise SetkeyError(
                    filename,
                    line,
                    pos - line_start + 1,
                    "unterminated quoted string (expected a closing '\"')",
                )
            body = text[pos + 1 : close]
            tokens.append(Token(STRING, body, line, pos - line_start + 1, pos, close + 1))
            # A quoted string may span lines (flex's [^"]* does); keep counting them.
            newlines = body.count("\n")
            if newlines:
                line += newlines
                line_start = pos + 1 + body.rfind("\n") + 1
            pos = close + 1
        elif ch in PUNCT:
            tokens.append(Token(ch, ch, line, pos - line_start + 1, pos, pos + 1))
            pos += 1
        else:
            match = _WORD_RE.match(text, pos)
            if match is None:
                shown = repr(ch) if ch.isprintable() else f"U+{ord(ch):04X}"
                raise SetkeyError(
                    filename,
                    line,
                    pos - line_start + 1,
                    f"unexpected character {shown}",
                )
            tokens.append(Token(WORD, match.group(), line, pos - line_start + 1, pos, match.end()))
            pos = match.end()
    tokens.append(Token(EOF, "", line, pos - line_start + 1, pos, pos))
    return tokens
