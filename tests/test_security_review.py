"""Static security review of src/pyipsec (no root, no network): an AST walk per module.

The project's security rules, checked on every module:

- no ``assert`` statement in src/ (``python -O`` strips them: validation must be an
  explicit check raising from errors.py);
- no ``==``/``!=`` between secret-derived values (ICV, MAC, AUTH, PRF outputs): those
  must go through ``hmac.compare_digest`` so the comparison time tells nothing;
- no ``random`` module (Mersenne Twister is predictable): ``secrets``/``os.urandom`` only;
- no key material among the arguments of a logging call, nor in an exception message.

Each check is a function returning findings, run twice: over src/ (must find nothing
beyond the explicit allow-list below) and over planted snippets (must find exactly the
planted faults and nothing in the look-alike legitimate code), so each check is shown to
bite and to stay quiet where it should.
"""

from __future__ import annotations

import ast
import functools
import re
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "pyipsec"


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    code: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.code}"


Check = Callable[[ast.Module, str], list[Finding]]


def _name_of(node: ast.AST) -> str | None:
    """The identifier an expression ends in: ``x`` -> x, ``a.b.icv`` -> icv, ``m[1]`` ->
    m, ``f(...)`` -> f's name (callers decide what a call means)."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Subscript):
        return _name_of(node.value)
    if isinstance(node, ast.Call):
        return _name_of(node.func)
    return None


def _functions(tree: ast.Module) -> Iterator[ast.AST]:
    """The module body and every function: the scopes assignments are tracked in."""
    yield tree
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            yield node


def _own_nodes(scope: ast.AST) -> Iterator[ast.AST]:
    """Nodes of ``scope`` not inside a nested function (those are scopes of their own)."""
    stack = list(ast.iter_child_nodes(scope))
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            stack.extend(ast.iter_child_nodes(node))


# -- 1. assert ------------------------------------------------------------------------------
def find_asserts(tree: ast.Module, path: str) -> list[Finding]:
    return [
        Finding(path, node.lineno, ast.unparse(node))
        for node in ast.walk(tree)
        if isinstance(node, ast.Assert)
    ]


# -- 2. ICV/AUTH/MAC compared with == --------------------------------------------------------
# A value is secret-derived when its identifier names an authenticator (icv, mac, hmac,
# digest, auth_data, authenticator, tag as a whole word) or when it comes straight from a
# call that computes one (prf, hmac, mac, icv, digest, finalize, sign). Lengths, ids,
# algorithm numbers and methods are not values of that kind, and a comparison with a
# literal or an ALL_CAPS constant is a type/tag test (ASN.1 tags, "psk" methods).
_SECRET_NAME = re.compile(
    r"(^|_)(icv|mac|hmac|digest|authenticator|auth_data|auth_value|tag|prf_out)($|_)", re.I
)
_NOT_SECRET = re.compile(r"_(len|length|bits|size|alg|algo|id|type|method|name|count)$", re.I)
_SECRET_CALL = re.compile(
    r"(^|_)(prf|prf_plus|hmac|mac|icv|compute_icv|digest|hexdigest|finalize|sign|auth)($|_)",
    re.I,
)
_CONSTANT = re.compile(r"^_?[A-Z][A-Z0-9_]*$")


def _is_constant(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return True
    name = _name_of(node)
    return (
        isinstance(node, ast.Name | ast.Attribute)
        and name is not None
        and bool(_CONSTANT.match(name))
    )


def _secret_names(scope: ast.AST) -> set[str]:
    """Local names assigned from a secret-computing call (``expected = prf(...)``)."""
    names: set[str] = set()
    for node in _own_nodes(scope):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            callee = _name_of(node.value.func)
            if callee is not None and _SECRET_CALL.search(callee):
                names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def _is_secret(node: ast.AST, local_secrets: set[str]) -> bool:
    if isinstance(node, ast.Call):
        callee = _name_of(node.func)
        return callee is not None and bool(_SECRET_CALL.search(callee))
    if isinstance(node, ast.Name) and node.id in local_secrets:
        return True
    if isinstance(node, ast.Name | ast.Attribute | ast.Subscript):
        name = _name_of(node)
        return (
            name is not None
            and bool(_SECRET_NAME.search(name))
            and not _NOT_SECRET.search(name)
            and not _CONSTANT.match(name)
        )
    return False


def find_secret_compares(tree: ast.Module, path: str) -> list[Finding]:
    found: list[Finding] = []
    for scope in _functions(tree):
        local_secrets = _secret_names(scope)
        for node in _own_nodes(scope):
            if not isinstance(node, ast.Compare):
                continue
            operands = [node.left, *node.comparators]
            for op, left, right in zip(node.ops, operands[:-1], operands[1:], strict=True):
                if not isinstance(op, ast.Eq | ast.NotEq):
                    continue
                if _is_constant(left) or _is_constant(right):
                    continue
                if _is_secret(left, local_secrets) or _is_secret(right, local_secrets):
                    found.append(Finding(path, node.lineno, ast.unparse(node)))
                    break
    return sorted(found, key=lambda f: f.line)


# -- 3. the random module --------------------------------------------------------------------
def find_random_use(tree: ast.Module, path: str) -> list[Finding]:
    found: list[Finding] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules = [node.module or ""]
        else:
            continue
        if any(m == "random" or m.startswith("random.") or m.endswith(".random") for m in modules):
            found.append(Finding(path, node.lineno, ast.unparse(node)))
    return found


# -- 4. key material in logs and exception messages ------------------------------------------
_KEY_NAME = re.compile(
    r"^(enc_key|encr_key|integ_key|auth_key|key_material|keymat|psk|secret|shared_secret|"
    r"dh_secret|private_key|skeyseed|sk_[a-z]{1,2})$|_secret$|_psk$|_keymat$",
    re.I,
)
_LOGGER = re.compile(r"^_?(log|logger|logging)$")
_LOG_METHODS = frozenset(
    {"debug", "info", "warning", "warn", "error", "exception", "critical", "log"}
)
# A key's length or presence says nothing about its bytes.
_HARMLESS_WRAPPERS = frozenset({"len", "bool", "type", "isinstance"})


def _key_references(node: ast.AST) -> Iterator[ast.AST]:
    """Key-named Name/Attribute nodes under ``node``, except inside len()/bool()/...
    and except ``x.key.bits``-style attribute reads of something else."""
    if isinstance(node, ast.Call) and _name_of(node.func) in _HARMLESS_WRAPPERS:
        return
    if isinstance(node, ast.Name | ast.Attribute):
        name = _name_of(node)
        if name is not None and _KEY_NAME.search(name):
            yield node
            return
    for child in ast.iter_child_nodes(node):
        yield from _key_references(child)


def _is_log_call(node: ast.Call) -> bool:
    func = node.func
    if not isinstance(func, ast.Attribute) or func.attr not in _LOG_METHODS:
        return False
    receiver = func.value
    if isinstance(receiver, ast.Call):  # logging.getLogger(...).info(...)
        return _name_of(receiver.func) == "getLogger"
    name = _name_of(receiver)
    return name is not None and bool(_LOGGER.match(name))


def find_logged_keys(tree: ast.Module, path: str) -> list[Finding]:
    found: list[Finding] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _is_log_call(node):
            args = [*node.args, *(k.value for k in node.keywords)]
            if any(True for a in args for _ in _key_references(a)):
                found.append(Finding(path, node.lineno, ast.unparse(node)))
    return found


def find_keys_in_exceptions(tree: ast.Module, path: str) -> list[Finding]:
    found: list[Finding] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            args = [*node.exc.args, *(k.value for k in node.exc.keywords)]
            if any(True for a in args for _ in _key_references(a)):
                found.append(Finding(path, node.lineno, ast.unparse(node)))
    return found


# -- running the checks ---------------------------------------------------------------------
# Comparisons that look like authenticator compares but compare public values; each with
# why. Keyed by (module, source of the comparison) so that moving lines keeps them.
ALLOWED: dict[tuple[str, str], str] = {
    ("crypto/certs.py", "ski.digest == key_id"): (
        "a SubjectKeyIdentifier is a public hash of a public key (certificate lookup)"
    ),
}


@functools.cache
def _modules() -> list[tuple[str, ast.Module]]:
    return [
        (str(p.relative_to(SRC)), ast.parse(p.read_text(), str(p)))
        for p in sorted(SRC.rglob("*.py"))
    ]


def _run(check: Check) -> list[Finding]:
    found = [f for path, tree in _modules() for f in check(tree, path)]
    return [f for f in found if (f.path, f.code) not in ALLOWED]


CHECKS: dict[str, Check] = {
    "assert": find_asserts,
    "secret-compare": find_secret_compares,
    "random": find_random_use,
    "logged-key": find_logged_keys,
    "key-in-exception": find_keys_in_exceptions,
}


def test_src_is_there() -> None:
    # The checks below pass trivially on an empty tree; make sure they see the code.
    modules = _modules()
    assert len(modules) > 50
    assert any(p == "crypto/esp_cipher.py" for p, _ in modules)


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_src_passes(name: str) -> None:
    findings = _run(CHECKS[name])
    assert findings == [], "\n".join(map(str, findings))


def test_allow_list_entries_still_exist() -> None:
    # A stale entry would silently allow a new comparison with the same text elsewhere.
    found = {(f.path, f.code) for p, t in _modules() for f in find_secret_compares(t, p)}
    assert set(ALLOWED) <= found


# -- planted faults: each check bites, and stays quiet on the look-alikes ---------------------
PLANTED: dict[str, tuple[str, list[str]]] = {
    "assert": (
        """
        def parse(buf):
            assert len(buf) >= 8, "short"
            if len(buf) < 8:
                raise ParseError("short")
        """,
        ["assert len(buf) >= 8, 'short'"],
    ),
    "secret-compare": (
        """
        import hmac
        def verify(self, data, icv, auth_data, peer_auth, psk, octets):
            if self.compute_icv(data) != icv:
                return False
            expected = prf(psk, octets)
            if auth_data == expected:
                return True
            if peer_auth.tag == received[-16:]:
                return True
            if h.finalize() == other:
                return True
            # look-alikes: constants, lengths, methods, and the right way
            if tag != _SEQ or oid_tag != 0x06 or local.auth == "psk":
                return False
            if aead.icv_len != alg.kernel_icv_bits or sa.auth != SADB_X_AALG_NULL:
                return False
            return hmac.compare_digest(expected, auth_data)
        """,
        [
            "self.compute_icv(data) != icv",
            "auth_data == expected",
            "peer_auth.tag == received[-16:]",
            "h.finalize() == other",
        ],
    ),
    "random": (
        """
        import os, secrets
        import random
        from random import randbytes
        from numpy import random as nprandom
        spi = secrets.randbits(32) or int.from_bytes(os.urandom(4), "big")
        """,
        ["import random", "from random import randbytes"],
    ),
    "logged-key": (
        """
        import logging
        log = logging.getLogger("x")
        def install(spec, keys, psk_id, psk):
            log.debug("SA %08x key %s", spec.spi, spec.enc_key.hex())
            log.info(f"derived {keys.sk_ei!r}")
            logging.getLogger("y").warning("psk %s", psk)
            log.info("key of %d bytes for %s, psk id %s", len(spec.integ_key), spec.spi, psk_id)
            print_key = spec.enc_key  # not logged
        """,
        [
            "log.debug('SA %08x key %s', spec.spi, spec.enc_key.hex())",
            "log.info(f'derived {keys.sk_ei!r}')",
            "logging.getLogger('y').warning('psk %s', psk)",
        ],
    ),
    "key-in-exception": (
        """
        def check(enc_key, secret):
            if len(enc_key) != 16:
                raise ConfigError(f"key of {len(enc_key)} bytes")
            if not secret:
                raise ConfigError("a secret is needed")
            raise ConfigError(f"bad key {enc_key.hex()}")
        """,
        ["raise ConfigError(f'bad key {enc_key.hex()}')"],
    ),
}


@pytest.mark.parametrize("name", sorted(PLANTED))
def test_check_bites_on_planted_code(name: str) -> None:
    source, expected = PLANTED[name]
    tree = ast.parse(textwrap.dedent(source))
    found = [f.code for f in CHECKS[name](tree, "planted.py")]
    assert found == expected


def test_every_check_has_a_planted_fault() -> None:
    assert set(PLANTED) == set(CHECKS)
