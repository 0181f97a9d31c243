"""The strongSwan settings syntax (pyipsec.config.swanctl_syntax)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyipsec.config.swanctl_syntax import (
    MAX_NESTING,
    Location,
    Section,
    SettingsError,
    load_settings,
    parse_settings,
)
from pyipsec.errors import ConfigError


def values(section: Section) -> dict[str, object]:
    """A section as nested plain dicts (keys -> values, sections -> dicts)."""
    out: dict[str, object] = {k: s.value for k, s in section.settings.items()}
    out.update({k: values(sub) for k, sub in section.sections.items()})
    return out


def test_sections_keys_and_lines() -> None:
    text = (
        "a = b\n"
        "section-one {\n"
        "    somevalue = asdf   \n"
        "    subsection {\n"
        "        othervalue = xxx\n"
        "    }\n"
        "    # a comment { with braces }\n"
        "    yetanother = zz  # trailing comment\n"
        "}\n"
        "section-two { \n"
        "x = 12\n"
        "}\n"
    )
    root = parse_settings(text, "t.conf")
    assert values(root) == {
        "a": "b",
        "section-one": {
            "somevalue": "asdf",
            "yetanother": "zz",
            "subsection": {"othervalue": "xxx"},
        },
        "section-two": {"x": "12"},
    }
    one = root.find("section-one")
    assert one is not None and one.location == Location("t.conf", 2)
    other = root.find("section-one.subsection")
    assert other is not None
    setting = other.get("othervalue")
    assert setting is not None and setting.location == Location("t.conf", 5)
    yet = one.get("yetanother")
    assert yet is not None and str(yet.location) == "t.conf:8"
    assert root.find("section-one.missing") is None
    assert root.find("nope.deeper") is None


def test_value_keeps_inner_blanks_and_special_characters() -> None:
    root = parse_settings("k = a, b ,c  d\nurl = http://[2001:db8::1]:80/x{y}\nempty =\n")
    assert values(root) == {"k": "a, b ,c  d", "url": "http://[2001:db8::1]:80/x{y}", "empty": ""}


def test_quoted_values_escapes_and_multiline() -> None:
    text = (
        'a = "x # not a comment"\n'
        'b = "line1\nline2"\n'
        'c = "q\\"\\\\\\t\\n"\n'
        'd = "long \\\n  value"\n'
        "e = 1\n"
    )
    root = parse_settings(text, "q.conf")
    assert values(root) == {
        "a": "x # not a comment",
        "b": "line1\nline2",
        "c": 'q"\\\t\n',
        "d": "long   value",
        "e": "1",
    }
    e = root.get("e")
    assert e is not None and e.location.line == 7  # line count survives the quoted newlines


def test_brace_on_next_line_and_closing_braces_on_one_line() -> None:
    root = parse_settings("a\n{\n b\n {\n  c = 1\n } }\n")
    assert values(root) == {"a": {"b": {"c": "1"}}}


def test_repeated_section_extends_and_repeated_key_replaces() -> None:
    root = parse_settings("s {\n a = 1\n b = 2\n}\ns {\n a = 3\n c = 4\n}\n")
    assert values(root) == {"s": {"a": "3", "b": "2", "c": "4"}}
    s = root.find("s")
    assert s is not None and s.location.line == 1
    a = s.get("a")
    assert a is not None and a.location.line == 6


def test_references_inherit_keys_and_subsections() -> None:
    text = (
        "templates {\n"
        "  base {\n    version = 2\n    proposals = default\n    local {\n auth = psk\n}\n  }\n"
        "  strict : templates.base {\n    proposals = aes256gcm16-prfsha384-ecp384\n  }\n"
        "}\n"
        "conns {\n  a : templates.strict {\n    remote_addrs = 192.0.2.2\n  }\n}\n"
    )
    root = parse_settings(text, "r.conf")
    a = root.find("conns.a")
    assert a is not None
    assert values(a) == {
        "remote_addrs": "192.0.2.2",
        "version": "2",
        "proposals": "aes256gcm16-prfsha384-ecp384",
        "local": {"auth": "psk"},
    }


def test_references_several_parents_first_wins() -> None:
    text = "x { k = 1\n only_x = 1\n}\ny { k = 2\n only_y = 2\n}\nz : x, y {\n}\n"
    z = parse_settings(text).find("z")
    assert z is not None
    assert values(z) == {"k": "1", "only_x": "1", "only_y": "2"}


# -- includes ----------------------------------------------------------------------


def test_include_glob_relative_to_including_file(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "b.conf").write_text("conn-b {\n  x = b\n}\n")
    (tmp_path / "conf.d" / "a.conf").write_text("conn-a {\n  x = a\n}\ninclude ../more/*.conf\n")
    (tmp_path / "more").mkdir()
    (tmp_path / "more" / "m.conf").write_text("deep = yes\n")
    (tmp_path / "main.conf").write_text(
        "connections {\n  include conf.d/*.conf\n  include none/*.conf\n}\ntop = 1\n"
    )
    root = load_settings(tmp_path / "main.conf")
    assert values(root) == {
        "top": "1",
        "connections": {"deep": "yes", "conn-a": {"x": "a"}, "conn-b": {"x": "b"}},
    }
    conn_b = root.find("connections.conn-b")
    assert conn_b is not None
    assert conn_b.location == Location(str(tmp_path / "conf.d" / "b.conf"), 1)
    # conf.d/a.conf sorts first, so conn-a was defined first.
    connections = root.find("connections")
    assert connections is not None
    assert list(connections.sections) == ["conn-a", "conn-b"]


def test_include_replaces_earlier_values(tmp_path: Path) -> None:
    (tmp_path / "override.conf").write_text("a = 2\n")
    (tmp_path / "main.conf").write_text("a = 1\ninclude override.conf\n")
    assert values(load_settings(tmp_path / "main.conf")) == {"a": "2"}


def test_key_named_include_is_still_a_key() -> None:
    assert values(parse_settings("include = x\n")) == {"include": "x"}
    assert values(parse_settings("include {\n a = 1\n}\n")) == {"include": {"a": "1"}}


# -- errors: each names file and line ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("a {\n b = 1\n", 1, "section 'a' is not closed"),
        ("a {\n b { c = 1 }\n}\n", 1, "section 'a' is not closed"),  # value ran to the end
        ("a = 1\n}\n", 2, "'}' without an open section"),
        ("a\n", 2, "unexpected end of file after 'a'"),
        ("a b = 1\n", 1, "expected '=' or '{' after 'a', found 'b'"),
        ("s {\n a.b = 1\n}\n", 2, "expected '=' or '{' after 'a', found '.'"),
        ("= 1\n", 1, "expected a section or key name"),
        ('a = "open\n\n', 1, "unterminated quoted string"),
        ('a = "x" y\n', 1, "unexpected 'y' after quoted value"),
        ('a = x"y"\n', 1, "double quote inside an unquoted value"),
        ("s : {\n}\n", 1, "expected the absolute name"),
        ("s : a b {\n}\n", 1, "expected '{' after the references"),
        ("x {\n}\ns : nothere {\n}\n", 3, "'nothere' to inherit from does not exist"),
        ("s : s {\n}\n", 1, "inherits from itself"),
        ("a {\n  b : a {\n  }\n}\n", 2, "inherits from itself"),
        ("include x.conf\n", 1, "relative include 'x.conf' in text without a file"),
        ("k = a\x00b\n", 1, "unexpected control character"),
        ("a\x01 = 1\n", 1, "unexpected control character"),
        ("x {\n" * (MAX_NESTING + 1), MAX_NESTING + 1, "nested deeper"),
    ],
)
def test_syntax_errors_name_file_and_line(text: str, line: int, message: str) -> None:
    with pytest.raises(SettingsError) as info:
        parse_settings(text, "e.conf")
    assert info.value.location == Location("e.conf", line)
    assert str(info.value).startswith(f"e.conf:{line}: ")
    assert message in str(info.value)
    assert isinstance(info.value, ConfigError)


def test_missing_include_names_the_include_line(tmp_path: Path) -> None:
    (tmp_path / "main.conf").write_text("a = 1\n\ninclude missing.conf\n")
    with pytest.raises(SettingsError, match=re.escape(f"{tmp_path / 'main.conf'}:3: ")):
        load_settings(tmp_path / "main.conf")


def test_error_in_included_file_names_that_file(tmp_path: Path) -> None:
    (tmp_path / "bad.conf").write_text("ok = 1\nbroken {\n")
    (tmp_path / "main.conf").write_text("include bad.conf\n")
    with pytest.raises(SettingsError) as info:
        load_settings(tmp_path / "main.conf")
    assert info.value.location == Location(str(tmp_path / "bad.conf"), 2)


def test_include_loop_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "loop.conf").write_text("include loop.conf\n")
    with pytest.raises(SettingsError, match="nested deeper"):
        load_settings(tmp_path / "loop.conf")


def test_unreadable_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read"):
        load_settings(tmp_path / "absent.conf")
    (tmp_path / "latin1.conf").write_bytes(b"a = caf\xe9\n")
    with pytest.raises(SettingsError, match="not UTF-8"):
        load_settings(tmp_path / "latin1.conf")


_ALPHABET = st.sampled_from(list('ab {}=:,."#\\\n\t x1'))


@settings(max_examples=300)
@given(st.text(_ALPHABET, max_size=60))
def test_random_input_only_raises_settings_error(text: str) -> None:
    try:
        root = parse_settings(text, "fuzz.conf")
    except SettingsError as exc:
        assert str(exc).startswith("fuzz.conf:")
        return
    assert isinstance(root, Section)


@given(st.text(max_size=80))
def test_random_unicode_only_raises_settings_error(text: str) -> None:
    try:
        parse_settings(text, "fuzz.conf")
    except SettingsError as exc:
        assert exc.location.file == "fuzz.conf"
