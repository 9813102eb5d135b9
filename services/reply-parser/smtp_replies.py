"""Every SMTP reply the reply front gives, by name: basic code, enhanced code, text.

aiosmtpd keeps the protocol's own replies (syntax errors, 552 over SIZE, ...) in one place;
these are the policy's, kept the same way, so a reply's wording and codes are read and
changed here and the handler only says which one applies. Enhanced codes are RFC 3463's:
their first digit is the reply's class (2 success, 4 try later, 5 do not retry).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SmtpReply:
    """One reply; ``text`` may name fields (``{reason}``) filled in by :meth:`format`."""

    code: int
    status: str  # the RFC 3463 enhanced status code, e.g. "5.1.1"
    text: str

    def format(self, **fields: object) -> str:
        """The reply line as aiosmtpd's handlers return it (no CRLF)."""
        return f"{self.code} {self.status} {self.text.format(**fields)}"

    def __str__(self) -> str:
        return self.format()

    def line(self, **fields: object) -> bytes:
        """The reply as written straight to a transport, before aiosmtpd has a session."""
        return f"{self.format(**fields)}\r\n".encode()


RECIPIENT_OK = SmtpReply(250, "2.1.5", "Recipient OK")
QUEUED = SmtpReply(250, "2.0.0", "Queued as {mail_id}")

TOO_MANY_RECIPIENTS = SmtpReply(452, "4.5.3", "Too many recipients")
TOO_MANY_CONVERSATIONS = SmtpReply(
    452, "4.5.3", "Too many conversations in one message; send to this one separately"
)
QUEUE_UNAVAILABLE = SmtpReply(451, "4.3.0", "Temporary queue failure, try again later")
TOO_MANY_CONNECTIONS = SmtpReply(421, "4.7.0", "Too many connections, try again later")
SESSION_CUT = SmtpReply(421, "4.4.2", "Closing connection: {reason}")

UNKNOWN_RECIPIENT = SmtpReply(550, "5.1.1", "<{address}>: {reason}")
NO_VALID_RECIPIENTS = SmtpReply(503, "5.5.1", "No valid recipients")
