"""Structured (JSON line) logging: one event per line with its key fields."""

from __future__ import annotations

import hashlib
import logging
import sys
import time

import orjson

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def setup_logging(service: str, level: str = "INFO") -> logging.Logger:
    """Configure the root logger for a service; quiets chatty client libraries."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiokafka logs every fetch at DEBUG and faust leaves it there; it costs CPU per event.
    for noisy in ("aiokafka", "kafka", "faust", "mode", "uvicorn.access", "mail.log", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return logging.getLogger(service)


def redact_address(address: str) -> str:
    """An email address as a log line may hold it: a short hash of the whole address (to
    tell repeats of one sender apart) and its domain (to see where mail comes from); the
    local part never appears. Unkeyed: it hides an address from a reader of the logs, not
    from someone testing a guessed address against them."""
    normalised = address.strip().lower()
    digest = hashlib.sha256(normalised.encode()).hexdigest()[:12]
    domain = normalised.rpartition("@")[2] if "@" in normalised else ""
    return f"{digest}@{domain}" if domain else digest


def now_ms() -> int:
    return int(time.time() * 1000)
