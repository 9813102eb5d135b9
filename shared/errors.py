"""The one base of every exception this project defines.

Each error carries a ``reason``: a sentence an operator, a seller or an API caller can act
on (what was wrong, and where). Subclasses keep their own names and extra fields (an HTTP
status, an SMTP code, a ``retryable`` flag) and may also derive from the built-in type that
says what kind of failure they are (``ValueError`` for bad input), so existing ``except``
clauses keep working.
"""

from __future__ import annotations


class BridgeError(Exception):
    """A failure the bridge names; ``reason`` is the actionable sentence.

    By default the reason is the first argument (what ``str(exc)`` shows for one-argument
    errors); subclasses that format their message differently set ``reason`` themselves.
    """

    reason: str

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        self.reason = str(args[0]) if args else ""
