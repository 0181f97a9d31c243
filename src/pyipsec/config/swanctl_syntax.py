"""The strongSwan settings syntax (strongswan.conf(5), swanctl.conf(5)) -> a section tree.

The format, as strongSwan documents it:

- ``name { ... }`` opens a section; sections nest. A section may also inherit from
  others: ``name : a.b, c { ... }`` takes every key and subsection of the sections
  named by their absolute (dotted) names that it does not define itself.
- ``key = value`` sets a key; the value runs to the end of the line (or to a ``#``),
  without surrounding blanks. A value in double quotes may hold ``#``, span lines and
  use the escapes ``\\"``, ``\\\\``, ``\\n``, ``\\t``, ``\\r``, ``\\b``, ``\\f``.
- ``#`` starts a comment that runs to the end of the line.
- ``include PATTERN`` reads the files matching a shell glob, relative to the directory
  of the including file, into the section the statement stands in. A plain name that
  matches no file is an error; a glob matching nothing is not (``conf.d/*.conf``).
- Names of sections and keys are any printable characters but ``. , : { } = " #``
  and blanks. A section seen again extends the earlier one; a key set again replaces
  the earlier value (as swanctl does when includes repeat settings).

Every key and section keeps the file and line that defined it, so that the schema
layer can point at the exact place of a bad value. All errors are ``SettingsError``
(a ``ConfigError``) whose message starts with ``file:line:``.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path

from pyipsec.errors import ConfigError

_NAME_STOP = frozenset('.,:{}="#') | frozenset(" \t\r\n")
_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}
_GLOB_CHARS = frozenset("*?[")
# Includes nest; a file that includes itself would recurse forever.
MAX_INCLUDE_DEPTH = 16
# A config file is text a human wrote; refuse anything absurdly large.
MAX_FILE_SIZE = 16 * 1024 * 1024
# swanctl.conf nests five levels deep; a bound keeps the tree walks off Python's stack limit.
MAX_NESTING = 64


@dataclass(frozen=True, slots=True)
class Location:
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


class SettingsError(ConfigError):
    """A configuration file problem, located at ``location`` (file and line)."""

    def __init__(self, location: Location, message: str) -> None:
        super().__init__(f"{location}: {message}")
        self.location = location
        self.detail = message


@dataclass(slots=True)
class Setting:
    name: str
    value: str
    location: Location


@dataclass(slots=True)
class Section:
    name: str
    location: Location
    settings: dict[str, Setting] = field(default_factory=dict)
    sections: dict[str, Section] = field(default_factory=dict)
    references: list[tuple[str, Location]] = field(default_factory=list)

    def get(self, key: str) -> Setting | None:
        return self.settings.get(key)

    def section(self, name: str) -> Section | None:
        return self.sections.get(name)

    def find(self, path: str) -> Section | None:
        """The subsection at a dotted path (``connections.home.children``)."""
        node: Section | None = self
        for part in path.split("."):
            if node is None:
                return None
            node = node.sections.get(part)
        return node

    def subsection(self, name: str, location: Location) -> Section:
        existing = self.sections.get(name)
        if existing is None:
            existing = self.sections[name] = Section(name, location)
        return existing


# -- scanner and parser ----------------------------------------------------------------


class _Parser:
    """One file's text into a section, with includes read through ``loader``."""

    def __init__(self, text: str, filename: str, base_dir: Path | None, depth: int) -> None:
        self.text = text
        self.pos = 0
        self.line = 1
        self.filename = filename
        self.base_dir = base_dir
        self.depth = depth

    def here(self) -> Location:
        return Location(self.filename, self.line)

    def error(self, message: str, location: Location | None = None) -> SettingsError:
        return SettingsError(location or self.here(), message)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_blanks(self, newlines: bool) -> None:
        """Skip spaces, tabs, comments and (if asked) line ends."""
        text, n = self.text, len(self.text)
        while self.pos < n:
            ch = text[self.pos]
            if ch in " \t\r":
                self.pos += 1
            elif ch == "#":
                end = text.find("\n", self.pos)
                self.pos = n if end < 0 else end
            elif ch == "\n" and newlines:
                self.pos += 1
                self.line += 1
            else:
                return

    def read_name(self) -> str:
        start, text, n = self.pos, self.text, len(self.text)
        while self.pos < n and text[self.pos] not in _NAME_STOP:
            ch = text[self.pos]
            if not ch.isprintable():
                raise self.error(f"unexpected control character {ch!r}")
            self.pos += 1
        return text[start : self.pos]

    def end_of_line(self, what: str) -> None:
        self.skip_blanks(newlines=False)
        ch = self.peek()
        if ch == "\n":
            self.pos += 1
            self.line += 1
        elif ch:
            raise self.error(f"unexpected {ch!r} after {what}")

    def read_value(self) -> str:
        """After ``=``: a quoted string or the rest of the line, up to a comment."""
        self.skip_blanks(newlines=False)
        if self.peek() == '"':
            value = self.read_quoted()
            self.end_of_line("quoted value")
            return value
        text, n = self.text, len(self.text)
        start = self.pos
        while self.pos < n and text[self.pos] not in "#\n":
            self.pos += 1
        value = text[start : self.pos].strip(" \t\r")
        self.check_value_characters(value)
        if '"' in value:
            raise self.error("a double quote inside an unquoted value: quote the whole value")
        self.end_of_line("value")
        return value

    def check_value_characters(self, value: str) -> None:
        if not value.replace("\t", " ").isprintable():
            bad = next(c for c in value if not c.isprintable() and c != "\t")
            raise self.error(f"unexpected control character {bad!r} in a value")

    def read_quoted(self) -> str:
        opened = self.here()
        self.pos += 1
        out: list[str] = []
        text, n = self.text, len(self.text)
        while self.pos < n:
            ch = text[self.pos]
            self.pos += 1
            if ch == '"':
                value = "".join(out)
                self.check_value_characters(value.replace("\n", " "))
                return value
            if ch == "\n":
                self.line += 1
            if ch == "\\" and self.pos < n:
                nxt = text[self.pos]
                self.pos += 1
                if nxt == "\n":  # a backslash at the end of a line continues it
                    self.line += 1
                    continue
                out.append(_ESCAPES.get(nxt, "\\" + nxt))
                continue
            out.append(ch)
        raise self.error("unterminated quoted string", opened)

    def read_references(self) -> list[tuple[str, Location]]:
        refs: list[tuple[str, Location]] = []
        while True:
            self.skip_blanks(newlines=True)
            where = self.here()
            parts = [self.read_name()]
            while self.peek() == ".":
                self.pos += 1
                parts.append(self.read_name())
            if not all(parts):
                raise self.error("expected the absolute name of a section to inherit from")
            refs.append((".".join(parts), where))
            self.skip_blanks(newlines=True)
            if self.peek() != ",":
                return refs
            self.pos += 1

    def parse_into(self, root: Section) -> None:
        stack: list[Section] = [root]
        n = len(self.text)
        while True:
            self.skip_blanks(newlines=True)
            if self.pos >= n:
                break
            ch = self.peek()
            where = self.here()
            if ch == "}":
                if len(stack) == 1:
                    raise self.error("'}' without an open section")
                stack.pop()
                self.pos += 1
                continue
            name = self.read_name()
            if not name:
                raise self.error(f"expected a section or key name, found {ch!r}")
            if name == "include" and self.peek() in " \t":
                after = self.pos
                self.skip_blanks(newlines=False)
                if self.peek() not in ("=", "{", ":", "\n", ""):
                    pattern = self.read_value()
                    self.include(pattern, stack[-1], where)
                    continue
                self.pos = after
            self.skip_blanks(newlines=True)
            ch = self.peek()
            if ch == "=":
                self.pos += 1
                value = self.read_value()
                stack[-1].settings[name] = Setting(name, value, where)
            elif ch in ("{", ":"):
                refs: list[tuple[str, Location]] = []
                if ch == ":":
                    self.pos += 1
                    refs = self.read_references()
                    if self.peek() != "{":
                        raise self.error(f"expected '{{' after the references of section {name!r}")
                self.pos += 1
                if len(stack) > MAX_NESTING:
                    raise self.error(f"sections nested deeper than {MAX_NESTING}")
                section = stack[-1].subsection(name, where)
                section.references.extend(refs)
                stack.append(section)
            elif ch == "":
                raise self.error(f"unexpected end of file after {name!r}")
            else:
                raise self.error(f"expected '=' or '{{' after {name!r}, found {ch!r}")
        if len(stack) > 1:
            # Point at the opening line: that is where the user has to look.
            open_section = stack[-1]
            raise self.error(
                f"section {open_section.name!r} is not closed before the end of the file",
                open_section.location,
            )

    def include(self, pattern: str, into: Section, where: Location) -> None:
        if not pattern:
            raise self.error("include needs a file name or pattern", where)
        path = Path(pattern)
        if not path.is_absolute():
            if self.base_dir is None:
                raise self.error(f"relative include {pattern!r} in text without a file", where)
            path = self.base_dir / path
        if self.depth >= MAX_INCLUDE_DEPTH:
            raise self.error(f"includes nested deeper than {MAX_INCLUDE_DEPTH}", where)
        if _GLOB_CHARS & set(pattern):
            matches = sorted(glob.glob(str(path)))
        else:
            if not path.is_file():
                raise self.error(f"included file {pattern!r} not found", where)
            matches = [str(path)]
        for match in matches:
            _read_file(Path(match), into, self.depth + 1, where)


def _read_file(path: Path, into: Section, depth: int, where: Location | None) -> None:
    here = where or Location(str(path), 0)
    try:
        if path.stat().st_size > MAX_FILE_SIZE:
            raise SettingsError(here, f"{path} is larger than {MAX_FILE_SIZE} bytes")
        data = path.read_bytes()
    except OSError as exc:
        raise SettingsError(here, f"cannot read {path}: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SettingsError(here, f"{path} is not UTF-8 text (byte {exc.start})") from None
    _Parser(text, str(path), path.parent, depth).parse_into(into)


# -- references (section inheritance) ------------------------------------------------------


def _merge_missing(target: Section, source: Section) -> None:
    """Copy into ``target`` what it lacks from ``source`` (recursively)."""
    for key, setting in source.settings.items():
        target.settings.setdefault(key, setting)
    for name, sub in source.sections.items():
        mine = target.sections.get(name)
        if mine is None:
            mine = target.sections[name] = Section(name, sub.location)
        _merge_missing(mine, sub)


def resolve_references(root: Section) -> None:
    """Apply every ``name : refs`` inheritance in place; errors name the reference.

    A referenced section is resolved (with its subsections) before it is copied, so
    inherited subsections carry what they inherit themselves.
    """
    done: set[int] = set()
    busy: set[int] = set()

    def resolve(section: Section) -> None:
        if id(section) in done:
            return
        busy.add(id(section))
        for ref, where in section.references:
            target = root.find(ref)
            if target is None:
                raise SettingsError(where, f"section {ref!r} to inherit from does not exist")
            if id(target) in busy:
                raise SettingsError(where, f"section {section.name!r} inherits from itself")
            resolve(target)
            _merge_missing(section, target)
        section.references.clear()
        for sub in list(section.sections.values()):
            resolve(sub)
        busy.discard(id(section))
        done.add(id(section))

    resolve(root)


# -- entry points -------------------------------------------------------------------------


def parse_settings(
    text: str, filename: str = "<string>", base_dir: str | os.PathLike[str] | None = None
) -> Section:
    """Parse settings text; includes are relative to ``base_dir`` (refused without it)."""
    root = Section("", Location(filename, 0))
    _Parser(text, filename, Path(base_dir) if base_dir is not None else None, 0).parse_into(root)
    resolve_references(root)
    return root


def load_settings(path: str | os.PathLike[str]) -> Section:
    """Read a settings file with its includes."""
    file = Path(path)
    root = Section("", Location(str(file), 0))
    _read_file(file, root, 0, None)
    resolve_references(root)
    return root
