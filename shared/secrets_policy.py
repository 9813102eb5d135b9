"""Which secret values a service may start with: the one rule, and the refusal at start-up.

Production refuses a default, empty or weak secret; development mode
(``BRIDGE_DEV_MODE=true``: the local run command, the devstack, the tests and the
benchmarks) accepts them. Each service declares the secrets it actually uses
(:class:`SecretSetting`, in its entry point) and calls :func:`refuse_weak_secrets`
before it opens a port or touches Kafka, so a service never needs a secret it
does not read.

Weak means:
- empty, while the feature that reads it is in use;
- a published value: the default of any secret setting (:data:`shared.config.DEV_SECRETS`,
  the dev values, which the dev overlay also uses), or one of its keys;
- for a secret we generate (HMAC keys, bearer tokens), fewer than
  :data:`MIN_KEY_BYTES` bytes or fewer than :data:`MIN_DISTINCT_CHARS` distinct
  characters (a placeholder such as ``changemechangeme...``). Credentials issued
  by someone else (the platform's app secret, the relay's password) have their
  issuer's format: only the first two rules apply to them.
Key rings (``kid:secret,kid:secret``) are checked key by key, parsed by the
service's own parser. Pure, but for :func:`refuse_weak_secrets`, the edge.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from shared.config import DEV_SECRETS, BridgeSettings
from shared.tokens import parse_keys

DEV_MODE_VAR = "BRIDGE_DEV_MODE"
MIN_KEY_BYTES = 32  # HMAC-SHA256 keys: at least the hash's output length
MIN_DISTINCT_CHARS = 8  # random text of 32+ characters has far more
GENERATE_HINT = 'python -c "import secrets; print(secrets.token_urlsafe(48))"'

log = logging.getLogger("secrets_policy")

# A key ring's parser: the ring's text -> (key id, key material) per key; ValueError if
# malformed. Services pass the parser they use, so the check sees what they will use.
RingParser = Callable[[str], Iterable[tuple[object, bytes]]]


class Origin(enum.Enum):
    GENERATED = "generated"  # ours: an HMAC key or a bearer token; length rule applies
    ISSUED = "issued"  # a third party's credential: its format is theirs


def _always(cfg: Any) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class SecretSetting:
    """A secret a service reads: the field of its settings, its origin, how to split it
    into keys (a ring), and when the service needs it (empty is fine otherwise)."""

    name: str
    origin: Origin
    ring: RingParser | None = None
    needed: Callable[[Any], bool] = field(default=_always)

    @property
    def env_var(self) -> str:
        return f"BRIDGE_{self.name.upper()}"


def secret_field_names() -> tuple[str, ...]:
    """Every secret setting of every service (each a ``SecretStr`` field)."""
    return tuple(DEV_SECRETS)


def _published_values() -> frozenset[bytes]:
    """The default of every secret setting, whole and split like a ring (``kid:secret``)."""
    out: set[bytes] = set()
    for text in DEV_SECRETS.values():
        for value in (text, *(item.partition(":")[2] for item in text.split(","))):
            if value:
                out.add(value.encode())
    return frozenset(out)


PUBLISHED = _published_values()


def key_weakness(material: bytes, origin: Origin) -> str:
    """Why one key or secret is weak, or ``""``. Never quotes the value."""
    if not material:
        return "empty"
    if material in PUBLISHED:
        return "a published default"
    if origin is Origin.GENERATED:
        if len(material) < MIN_KEY_BYTES:
            return f"{len(material)} bytes, at least {MIN_KEY_BYTES} required"
        if len(set(material)) < MIN_DISTINCT_CHARS:
            return "a placeholder, not random"
    return ""


def setting_weakness(secret: SecretSetting, value: str) -> list[str]:
    """The problems of one secret's value, each ``"<reason>"`` or ``"key <kid>: <reason>"``."""
    if secret.ring is None:
        reason = key_weakness(value.encode(), secret.origin)
        return [reason] if reason else []
    if not value:
        return ["empty"]
    try:
        keys = list(secret.ring(value))
    except ValueError:  # the parser's text may quote the value: not repeated here
        return ["malformed key ring (expected kid:secret[,kid:secret...])"]
    if not keys:
        return ["empty"]
    return [
        f"key {kid}: {reason}"
        for kid, material in keys
        if (reason := key_weakness(material, secret.origin))
    ]


def weak_secrets(cfg: BridgeSettings, used: Iterable[SecretSetting]) -> list[str]:
    """``"BRIDGE_X (reason)"`` for every secret the service needs that is weak (in any mode)."""
    problems = []
    for secret in used:
        if not secret.needed(cfg):
            continue
        value = getattr(cfg, secret.name)
        text = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
        problems += [f"{secret.env_var} ({reason})" for reason in setting_weakness(secret, text)]
    return problems


def refusal_message(service: str, problems: list[str]) -> str:
    """The one line a refused start prints: every offending variable and how to fix it."""
    return (
        f"{service}: refusing to start with default or weak secrets: {'; '.join(problems)}."
        f" Generate each with {GENERATE_HINT} (key rings: kid:secret[,kid:secret], the"
        " first signs; platform and relay credentials as issued), see docs/deployment.md;"
        f" {DEV_MODE_VAR}=true is for local development only."
    )


def refuse_weak_secrets(cfg: BridgeSettings, used: Iterable[SecretSetting], service: str) -> None:
    """Exit (status 1, the one-line reason on stderr) unless every secret ``service`` needs
    is strong or development mode is on. Call it before opening a port or touching Kafka."""
    problems = weak_secrets(cfg, used)
    if cfg.dev_mode:
        if problems:
            log.warning(
                "development mode: weak secrets accepted; never run production so",
                extra={"weak": [p.partition(" ")[0] for p in problems]},
            )
        return
    if problems:
        raise SystemExit(refusal_message(service, problems))


# Reply-address token keys: the mailer signs with them, the reply front verifies.
REPLY_TOKEN_KEYS = SecretSetting("token_keys", Origin.GENERATED, ring=parse_keys)
