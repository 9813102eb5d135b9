"""One error base: every exception the project defines is a BridgeError with a reason."""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

import pytest

from shared.chat_platform.base import PayloadError, PlatformError
from shared.codec import DecodeError
from shared.errors import BridgeError
from shared.tokens import ExpiredToken, TokenError

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("shared", "services", "devstack", "bench")
BUILTIN_EXCEPTIONS = {
    name
    for name, obj in vars(builtins).items()
    if isinstance(obj, type) and issubclass(obj, BaseException)
}


def _exception_classes() -> dict[str, tuple[str, list[str]]]:
    """name -> (where, base names) of every class the project's sources define."""
    classes: dict[str, tuple[str, list[str]]] = {}
    for top in SOURCES:
        for path in (ROOT / top).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ClassDef):
                    bases = [
                        b.id
                        if isinstance(b, ast.Name)
                        else b.attr
                        if isinstance(b, ast.Attribute)
                        else ""
                        for b in node.bases
                    ]
                    classes[node.name] = (f"{path.relative_to(ROOT)}:{node.lineno}", bases)
    return classes


def _derives_from_builtin_exception(
    name: str, classes: dict[str, tuple[str, list[str]]], seen: frozenset[str] = frozenset()
) -> bool:
    if name in BUILTIN_EXCEPTIONS:
        return True
    if name not in classes or name in seen:
        return False
    return any(_derives_from_builtin_exception(b, classes, seen | {name}) for b in classes[name][1])


def _reaches_bridge_error(name: str, classes: dict[str, tuple[str, list[str]]]) -> bool:
    if name == "BridgeError":
        return True
    return name in classes and any(_reaches_bridge_error(b, classes) for b in classes[name][1])


def test_every_exception_the_project_defines_derives_from_bridge_error() -> None:
    classes = _exception_classes()
    exceptions = {
        n for n in classes if n != "BridgeError" and _derives_from_builtin_exception(n, classes)
    }
    assert len(exceptions) > 20  # the scan found the hierarchies it is meant to check
    outside = sorted(
        f"{classes[n][0]} {n}" for n in exceptions if not _reaches_bridge_error(n, classes)
    )
    assert outside == []


def test_reason_defaults_to_the_message() -> None:
    exc = TokenError("the token has expired")
    assert exc.reason == "the token has expired" == str(exc)


@pytest.mark.parametrize(
    "exc",
    [
        PlatformError("rate limited", status=429, retryable=True),
        PayloadError("expected a string", field="text"),
        ExpiredToken("expired"),
        DecodeError("not JSON"),
    ],
)
def test_existing_errors_keep_their_types_and_reasons(exc: BridgeError) -> None:
    assert isinstance(exc, BridgeError)
    assert exc.reason
    # Built-in kinds stay, so existing ``except ValueError`` clauses still catch bad input.
    if isinstance(exc, (PayloadError, TokenError, DecodeError)):
        assert isinstance(exc, ValueError)


def test_a_subclass_reason_set_after_formatting_is_kept() -> None:
    exc = PayloadError("expected a string", field="text")
    assert str(exc) == "text: expected a string"
    assert exc.reason == "expected a string"
