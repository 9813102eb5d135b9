"""Sender authentication of an inbound reply: DKIM, SPF, DMARC alignment, per-shop policy.

Two sources, in this order:

1. ``Authentication-Results`` added by our own MX (its authserv-id is configured as trusted;
   only the topmost such header counts, since RFC 8601 MTAs strip copies of their own id
   from incoming mail and anything lower may be the sender's forgery).
2. Our own evaluation: DKIM with dkimpy, SPF with pyspf, DMARC (RFC 7489) alignment of the
   From domain with the DKIM ``d=`` or the SPF ``MAIL FROM`` domain (relaxed alignment joins
   names under one organizational domain, found with the Public Suffix List).

The author is the one address of the one ``From`` header (:func:`author_address`): a mail
naming several authors, or none readably, is refused before any of this (which of them
would "the sender" be? the first is what the attacker chooses).

What a shop requires is its policy (:data:`MailAuthPolicy`; :func:`auth_verdict` is the
decision table). The default, ``aligned_pass``, asks for a DKIM signature or an SPF pass of
the author's own domain (relaxed alignment, strict where its DMARC record says so), whether
or not that domain publishes DMARC: a mailbox or helpdesk that cannot prove the author's
domain sent the mail cannot speak for the seller.

DNS goes through a :class:`DnsResolver` (pluggable: tests use :class:`StaticResolver`, no
network), only in :func:`evaluate` and what it calls (:func:`look_up`), which the parser
runs at its edge; what DNS said is judged by pure functions (:func:`local_result`,
:func:`author_alignment`, :func:`auth_verdict`) and the result is passed into the pipeline.
Evaluation never raises: DNS trouble is ``temperror``, which every policy defers
(retried later, never accepted); a malformed record is ``permerror`` or ``none``.
"""

from __future__ import annotations

import dataclasses
import re
import time
from dataclasses import dataclass
from email.errors import ObsoleteHeaderDefect
from email.message import Message
from email.policy import default as default_policy
from typing import Any, Literal, Protocol, get_args

import dkim
from publicsuffixlist import PublicSuffixList

# pyspf and authres are declared dependencies; guarded so that an install without them
# degrades to "SPF none / no trusted results" (DKIM and DMARC still evaluated) instead of
# taking the parser down.
try:
    import spf
except ImportError:  # pragma: no cover - exercised only on incomplete installs
    spf = None
try:
    import authres
except ImportError:  # pragma: no cover
    authres = None

from shared.errors import BridgeError
from shared.events import DestinationKind, MailAuthPolicy, ShopSettings

PASS, FAIL, NONE, TEMPERROR, PERMERROR = "pass", "fail", "none", "temperror", "permerror"
POLICIES: tuple[MailAuthPolicy, ...] = get_args(MailAuthPolicy)
MAX_DKIM_SIGNATURES = 5  # verifying costs a DNS lookup and a body hash each


class DnsTempError(BridgeError):
    """DNS could not answer now (timeout, SERVFAIL)."""


class DnsResolver(Protocol):
    """The DNS the checks need. Missing names answer ``[]``; trouble raises DnsTempError."""

    def txt(self, name: str) -> list[str]: ...

    def a(self, name: str) -> list[str]: ...

    def aaaa(self, name: str) -> list[str]: ...

    def mx(self, name: str) -> list[tuple[int, str]]: ...


class StaticResolver:
    """Records from a dict (tests, the inspect command): ``{("name", "TXT"): [...]}``."""

    def __init__(self, records: dict[tuple[str, str], list] | None = None) -> None:
        self.records = {
            (n.lower().rstrip("."), t.upper()): v for (n, t), v in (records or {}).items()
        }

    def _get(self, name: str, rtype: str) -> list:
        value = self.records.get((name.lower().rstrip("."), rtype), [])
        if value == TEMPERROR:
            raise DnsTempError(f"{rtype} {name}")
        return list(value)

    def txt(self, name: str) -> list[str]:
        return self._get(name, "TXT")

    def a(self, name: str) -> list[str]:
        return self._get(name, "A")

    def aaaa(self, name: str) -> list[str]:
        return self._get(name, "AAAA")

    def mx(self, name: str) -> list[tuple[int, str]]:
        return self._get(name, "MX")


RESERVED_TLDS = frozenset({"localhost", "test", "example", "invalid", "local"})


class DnsPythonResolver:
    """Real DNS through dnspython, with a timeout and a small positive/negative cache.

    *nameserver* (an IP address, ``ip:port`` or ``[ipv6]:port``) asks that server only,
    reserved names included
    (it is the operator's, or the local stack's, own); without it the system's resolvers are
    asked and reserved names never leave the host.
    """

    def __init__(
        self,
        timeout_s: float = 2.0,
        cache_ttl_s: float = 300.0,
        cache_size: int = 10_000,
        nameserver: str = "",
    ) -> None:
        import dns.resolver  # imported here: tests and the inspect command never need it

        self._dns = dns
        if nameserver:
            host, port = nameserver, "53"
            if nameserver.startswith("[") or nameserver.count(":") == 1:
                host, _, port = nameserver.rpartition(":")
            self._resolver = dns.resolver.Resolver(configure=False)
            self._resolver.nameservers = [host.strip("[]")]
            self._resolver.port = int(port)
        else:
            self._resolver = dns.resolver.Resolver()
        self._resolver.lifetime = timeout_s
        self._skip_reserved = not nameserver
        self._ttl = cache_ttl_s
        self._size = cache_size
        self._cache: dict[tuple[str, str], tuple[float, list]] = {}

    def _query(self, name: str, rtype: str) -> list:
        key = (name.lower().rstrip("."), rtype)
        if self._skip_reserved and key[0].rpartition(".")[2] in RESERVED_TLDS:
            return []  # RFC 2606/6761 names never resolve: no query leaves the host
        hit = self._cache.get(key)
        now = time.monotonic()
        if hit and hit[0] > now:
            return hit[1]
        try:
            answer = self._resolver.resolve(key[0], rtype)
            values = list(answer)
        except (self._dns.resolver.NXDOMAIN, self._dns.resolver.NoAnswer):
            values = []
        except (self._dns.exception.Timeout, self._dns.resolver.NoNameservers) as exc:
            raise DnsTempError(f"{rtype} {name}: {exc.__class__.__name__}") from None
        except self._dns.exception.DNSException:
            values = []
        if len(self._cache) >= self._size:
            self._cache.clear()
        self._cache[key] = (now + self._ttl, values)
        return values

    def txt(self, name: str) -> list[str]:
        return [b"".join(r.strings).decode("utf-8", "replace") for r in self._query(name, "TXT")]

    def a(self, name: str) -> list[str]:
        return [r.address for r in self._query(name, "A")]

    def aaaa(self, name: str) -> list[str]:
        return [r.address for r in self._query(name, "AAAA")]

    def mx(self, name: str) -> list[tuple[int, str]]:
        return [(r.preference, str(r.exchange).rstrip(".")) for r in self._query(name, "MX")]


@dataclass(frozen=True, slots=True)
class AuthResult:
    """What authentication says about one mail; ``source`` is ``local`` or ``authres:<id>``.

    ``aligned`` is the author check the default policy uses: ``pass`` when a verified DKIM
    signature or an SPF pass belongs to the author's domain (:func:`author_alignment`),
    ``temperror`` when only DNS trouble stands between the mail and such a pass.
    """

    dmarc: str = NONE
    dmarc_policy: str = ""  # the published p= (or sp=) when known: reject / quarantine / none
    dkim: str = NONE
    dkim_domains: tuple[str, ...] = ()  # d= of the signatures that verified
    spf: str = NONE
    spf_domain: str = ""
    from_domain: str = ""
    source: str = "local"
    aligned: str = NONE
    dkim_temp_domains: tuple[str, ...] = ()  # d= of signatures whose key DNS did not answer

    def summary(self) -> str:
        dkim = self.dkim + (f" (d={','.join(self.dkim_domains)})" if self.dkim_domains else "")
        spf = self.spf + (f" (mail from {self.spf_domain})" if self.spf_domain else "")
        return (
            f"author {self.from_domain or '?'}: aligned={self.aligned} dkim={dkim} spf={spf}"
            f" dmarc={self.dmarc}"
            + (f" (p={self.dmarc_policy})" if self.dmarc_policy else "")
            + f" via {self.source}"
        )


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a policy makes of an :class:`AuthResult`: accept, refuse, or defer (DNS trouble:
    check again later, never accept now)."""

    outcome: Literal["accept", "refuse", "defer"]
    reason: str = ""


# --- domains -----------------------------------------------------------------------------------

# The Public Suffix List, private section included (github.io, eu.org, uk.com are shared
# by strangers), as shipped offline in the package; parsed once. Unknown TLDs (.localhost,
# .example) count as one-label suffixes, as the PSL algorithm's "*" rule says.
_PSL = PublicSuffixList()


def org_domain(domain: str) -> str:
    """The organizational domain (RFC 7489 s3.2): the public suffix plus one label.

    "" when *domain* has none (it is itself a public suffix, or not a domain name): then no
    other name shares its owner.
    """
    return _PSL.privatesuffix(domain.lower().rstrip(".")) or ""


def aligned(domain: str, from_domain: str, mode: str) -> bool:
    """Does *domain* (DKIM d= or SPF MAIL FROM) align with the author's *from_domain*?

    Strict: the same name. Relaxed: the same organizational domain, which a public suffix
    does not have, so it aligns only with itself.
    """
    domain, from_domain = domain.lower().rstrip("."), from_domain.lower().rstrip(".")
    if not domain or not from_domain:
        return False
    if domain == from_domain:
        return True
    if mode == "s":
        return False
    org = org_domain(from_domain)
    return bool(org) and org == org_domain(domain)


class AuthorError(BridgeError, ValueError):
    """The From header does not name exactly one readable author; the reason says how."""


def author_address(msg: Message) -> str:
    """The one address of the one RFC5322.From header, lower-cased.

    Raises :class:`AuthorError` for no From, several From headers, several addresses (or a
    group), or a header the modern parser reads only with invalid-syntax defects (where
    mail programs disagree on who the author is). Addresses come from the structured parse
    of the raw header, so an encoded word in a display name can never add or hide one.
    """
    try:
        values = msg.get_all("From") or []
        if not values:
            raise AuthorError("no From header")
        if len(values) > 1:
            raise AuthorError(f"{len(values)} From headers (a mail has one author)")
        header: Any = values[0]
        if not hasattr(header, "addresses"):  # a message parsed with the compat32 policy
            header = default_policy.header_factory("From", str(header))
        defects = [d for d in header.defects if not isinstance(d, ObsoleteHeaderDefect)]
        addresses = header.addresses
    except (IndexError, ValueError, TypeError) as exc:
        if isinstance(exc, AuthorError):
            raise
        # The stdlib's structured parser itself fails on some garbage (IndexError).
        raise AuthorError("the From header has no readable address: it does not parse") from exc
    if len(addresses) > 1:
        raise AuthorError(
            f"the From header names {len(addresses)} addresses (a reply must have one author)"
        )
    if defects or not addresses or not addresses[0].domain or not addresses[0].username:
        detail = f": {defects[0]}" if defects else ""
        raise AuthorError(f"the From header has no readable address{detail}")
    return addresses[0].addr_spec.strip().lower()


def from_domain_of(msg: Message) -> str:
    """The RFC5322.From domain, or "" when there is not exactly one readable author."""
    try:
        return author_address(msg).rpartition("@")[2].rstrip(".")
    except AuthorError:
        return ""


# --- DMARC record ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DmarcRecord:
    policy: str
    subdomain_policy: str
    adkim: str = "r"
    aspf: str = "r"


def parse_dmarc(text: str) -> DmarcRecord | None:
    tags: dict[str, str] = {}
    for item in text.split(";"):
        key, _, value = item.partition("=")
        if key.strip():
            tags[key.strip().lower()] = value.strip().lower()
    if tags.get("v") != "dmarc1" or tags.get("p") not in ("none", "quarantine", "reject"):
        return None
    policy = tags["p"]
    return DmarcRecord(
        policy,
        tags.get("sp", policy) if tags.get("sp") in ("none", "quarantine", "reject") else policy,
        tags.get("adkim", "r")[:1],
        tags.get("aspf", "r")[:1],
    )


def lookup_dmarc(from_domain: str, resolver: DnsResolver) -> tuple[DmarcRecord | None, str]:
    """The DMARC record for *from_domain* (falling back to its org domain) and the policy
    that applies to it."""
    for domain in dict.fromkeys(d for d in (from_domain, org_domain(from_domain)) if d):
        records = [r for r in resolver.txt(f"_dmarc.{domain}") if r.lower().startswith("v=dmarc1")]
        if len(records) == 1:
            record = parse_dmarc(records[0])
            if record is None:
                return None, ""
            applies = record.policy if domain == from_domain else record.subdomain_policy
            return record, applies
        if len(records) > 1:
            return None, ""  # RFC 7489 s6.6.3: more than one record, none applies
    return None, ""


# --- DKIM and SPF ------------------------------------------------------------------------------


def verify_dkim(raw: bytes, resolver: DnsResolver) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """(overall result, domains whose signature verified, domains whose key lookup met DNS
    trouble)."""
    count = min(
        raw.count(b"\nDKIM-Signature:")
        + raw.count(b"\ndkim-signature:")
        + (1 if raw[:15].lower() == b"dkim-signature:" else 0),
        MAX_DKIM_SIGNATURES,
    )
    if count == 0:
        return NONE, (), ()

    def dnsfunc(name: bytes | str, timeout: int = 5) -> bytes:
        text = name.decode() if isinstance(name, bytes) else name
        records = resolver.txt(text.rstrip("."))
        return records[0].encode() if records else b""

    passed: list[str] = []
    temp: list[str] = []
    for idx in range(count):
        checker = dkim.DKIM(raw, minkey=1024)
        try:
            if checker.verify(idx=idx, dnsfunc=dnsfunc):
                passed.append((checker.domain or b"").decode().lower())
        except DnsTempError:
            # dkimpy reads d= before it asks DNS for the key
            temp.append((checker.domain or b"").decode("ascii", "replace").lower())
        except Exception:  # noqa: BLE001 - dkimpy raises many types on malformed signatures
            continue
    if passed:
        return PASS, tuple(passed), tuple(temp)
    return (TEMPERROR if temp else FAIL), (), tuple(temp)


class _ResolverSpfQuery(spf.query if spf is not None else object):  # type: ignore[misc]
    """pyspf's evaluator with its DNS replaced by our resolver."""

    def __init__(self, resolver: DnsResolver, **kwargs: object) -> None:
        self._resolver = resolver
        super().__init__(**kwargs)

    def dns(self, name: str, qtype: str, cnames: object = None, ignore_void: bool = False) -> list:
        name = str(name).rstrip(".").lower()
        try:
            if qtype in ("TXT", "SPF"):
                return [[t.encode()] for t in self._resolver.txt(name)] if qtype == "TXT" else []
            if qtype == "A":
                return self._resolver.a(name)
            if qtype == "AAAA":
                return self._resolver.aaaa(name)
            if qtype == "MX":
                return self._resolver.mx(name)
            return []  # PTR and exp: not needed for a verdict
        except DnsTempError as exc:
            raise spf.TempError(str(exc)) from None


def check_spf(ip: str, mail_from: str, helo: str, resolver: DnsResolver) -> tuple[str, str]:
    """(result, domain checked) for the SMTP client *ip* and envelope sender *mail_from*."""
    domain = mail_from.rpartition("@")[2].lower() if mail_from else helo.lower()
    if not ip or not domain or spf is None:
        return NONE, domain
    try:
        query = _ResolverSpfQuery(
            resolver, i=ip, s=mail_from or f"postmaster@{helo}", h=helo or domain, timeout=5
        )
        result, _code, _explanation = query.check()
    except Exception:  # noqa: BLE001 - a broken record is not a crash
        return PERMERROR, domain
    return str(result).lower(), domain


# --- Authentication-Results --------------------------------------------------------------------

_POLICY_IN_COMMENT = re.compile(r"\bp=(reject|quarantine|none)\b", re.I)
# The authserv-id is the first token, after any leading comments (RFC 8601 s2.2).
_AUTHSERV_ID = re.compile(r"\s*(?:\([^()]*\)\s*)*([^\s;()]+)")


def trusted_results(msg: Message, trusted_ids: frozenset[str]) -> AuthResult | None:
    """The verdict of the topmost ``Authentication-Results`` from a trusted authserv-id.

    Which header that is is read from its first token, before any parsing: if it does not
    parse, there is no trusted result (the mail is checked locally), never the next one down,
    which the sender may have written.
    """
    if not trusted_ids or authres is None:
        return None
    for value in (msg.get_all("Authentication-Results", []) or [])[:10]:
        text = " ".join(str(value).split())
        first = _AUTHSERV_ID.match(text)
        authserv_id = first.group(1).strip('"').lower() if first else ""
        if authserv_id not in trusted_ids:
            continue
        try:
            header = authres.AuthenticationResultsHeader.parse("Authentication-Results: " + text)
        except Exception:  # noqa: BLE001 - authres raises several types on malformed input
            return None
        if str(header.authserv_id).lower() != authserv_id:
            return None  # read differently by the parser: not a header we can vouch for
        found: dict[str, str] = {}
        dkim_domains: list[str] = []
        dkim_temp: list[str] = []
        spf_domain = from_domain = ""
        for res in header.results:
            method, result = str(res.method).lower(), str(res.result).lower()
            props = {f"{p.type}.{p.name}".lower(): str(p.value) for p in res.properties}
            if method == "dkim":
                signer = (
                    props.get("header.d", props.get("header.i", ""))
                    .lstrip("@")
                    .rpartition("@")[2]
                    .lower()
                )
                if result == PASS:
                    dkim_domains.append(signer)
                elif result == TEMPERROR:
                    dkim_temp.append(signer)
                if found.get("dkim") != PASS:
                    found["dkim"] = result
            elif method in ("spf", "dmarc") and method not in found:
                found[method] = result
                if method == "spf":
                    spf_domain = props.get("smtp.mailfrom", "").rpartition("@")[2].lower()
                else:
                    from_domain = props.get("header.from", "").lower()
        match = _POLICY_IN_COMMENT.search(text)
        return AuthResult(
            dmarc=found.get("dmarc", NONE),
            dmarc_policy=match.group(1).lower() if match else "",
            dkim=found.get("dkim", NONE),
            dkim_domains=tuple(dkim_domains),
            spf=found.get("spf", NONE),
            spf_domain=spf_domain,
            from_domain=from_domain or from_domain_of(msg),
            source=f"authres:{header.authserv_id}",
            dkim_temp_domains=tuple(dkim_temp),
        )
    return None


# --- the whole evaluation ----------------------------------------------------------------------


def author_alignment(
    from_domain: str,
    *,
    dkim_domains: tuple[str, ...],
    dkim_temp_domains: tuple[str, ...] = (),
    spf: str,
    spf_domain: str,
    adkim: str = "r",
    aspf: str = "r",
    modes_known: bool = True,
) -> str:
    """Does a verified DKIM signature or an SPF pass belong to the author's domain? Pure.

    ``pass``, ``fail``, or ``temperror`` when DNS trouble hid what could have been a pass
    (an aligned signature whose key did not resolve, SPF of an aligned envelope domain that
    did not answer, or a relaxed-only match while the DMARC record that could require strict
    alignment did not answer: *modes_known* False). A non-aligned domain's DNS trouble never
    defers: nothing it could answer would make the mail pass.
    """
    if not from_domain:
        return FAIL

    def passes(dkim_mode: str, spf_mode: str) -> bool:
        return any(aligned(d, from_domain, dkim_mode) for d in dkim_domains) or (
            spf == PASS and aligned(spf_domain, from_domain, spf_mode)
        )

    if passes("s", "s") or (modes_known and passes(adkim, aspf)):
        return PASS
    if not modes_known and passes("r", "r"):  # relaxed only, and the record may say strict
        return TEMPERROR
    if any(aligned(d, from_domain, "r") for d in dkim_temp_domains) or (
        spf == TEMPERROR and aligned(spf_domain, from_domain, "r")
    ):
        return TEMPERROR
    return FAIL


def evaluate(
    raw: bytes,
    msg: Message,
    *,
    peer_ip: str,
    mail_from: str,
    helo: str = "",
    resolver: DnsResolver | None,
    trusted_ids: frozenset[str] = frozenset(),
) -> AuthResult:
    """DMARC verdict and author alignment for one mail. Never raises."""
    trusted = trusted_results(msg, trusted_ids)
    from_domain = from_domain_of(msg)
    if trusted is not None:
        # Alignment is judged against the author as we read it, not the MX's header.from.
        mx_dmarc_pass = trusted.dmarc == PASS and trusted.from_domain == from_domain
        trusted = dataclasses.replace(
            trusted,
            aligned=PASS
            if mx_dmarc_pass
            else author_alignment(
                from_domain,
                dkim_domains=trusted.dkim_domains,
                dkim_temp_domains=trusted.dkim_temp_domains,
                spf=trusted.spf,
                spf_domain=trusted.spf_domain,
            ),
        )
        if trusted.dmarc == FAIL and not trusted.dmarc_policy and resolver is not None:
            try:
                _, applies = lookup_dmarc(trusted.from_domain or from_domain, resolver)
            except DnsTempError:
                applies = ""
            return dataclasses.replace(trusted, dmarc_policy=applies)
        return trusted
    if resolver is None:
        return AuthResult(from_domain=from_domain, source="unchecked")
    if not from_domain:
        return AuthResult(dmarc=PERMERROR, from_domain="", source="local", aligned=FAIL)
    return local_result(
        from_domain,
        look_up(
            raw, from_domain, peer_ip=peer_ip, mail_from=mail_from, helo=helo, resolver=resolver
        ),
    )


@dataclass(frozen=True, slots=True)
class DnsFindings:
    """What the sender's DNS said about one mail (DKIM keys, SPF, the DMARC record)."""

    dkim: str
    dkim_domains: tuple[str, ...]
    dkim_temp_domains: tuple[str, ...]
    spf: str
    spf_domain: str
    dmarc_record: DmarcRecord | None
    dmarc_applies: str
    dmarc_known: bool  # False: the DMARC lookup met DNS trouble


def look_up(
    raw: bytes, from_domain: str, *, peer_ip: str, mail_from: str, helo: str, resolver: DnsResolver
) -> DnsFindings:
    """Every DNS question the local evaluation asks, through *resolver* (the I/O)."""
    dkim_result, dkim_domains, dkim_temp = verify_dkim(raw, resolver)
    spf_result, spf_domain = check_spf(peer_ip, mail_from, helo, resolver)
    try:
        record, applies = lookup_dmarc(from_domain, resolver)
        known = True
    except DnsTempError:
        record, applies, known = None, "", False
    return DnsFindings(
        dkim_result, dkim_domains, dkim_temp, spf_result, spf_domain, record, applies, known
    )


def local_result(from_domain: str, found: DnsFindings) -> AuthResult:
    """The DMARC verdict and author alignment from what DNS said. Pure."""
    record = found.dmarc_record
    author = author_alignment(
        from_domain,
        dkim_domains=found.dkim_domains,
        dkim_temp_domains=found.dkim_temp_domains,
        spf=found.spf,
        spf_domain=found.spf_domain,
        adkim=record.adkim if record else "r",
        aspf=record.aspf if record else "r",
        modes_known=found.dmarc_known,
    )
    if not found.dmarc_known:
        dmarc = TEMPERROR
    elif record is None:
        dmarc = NONE
    else:
        dmarc = {PASS: PASS, TEMPERROR: TEMPERROR}.get(author, FAIL)
    return AuthResult(
        dmarc,
        found.dmarc_applies,
        found.dkim,
        found.dkim_domains,
        found.spf,
        found.spf_domain,
        from_domain,
        aligned=author,
        dkim_temp_domains=found.dkim_temp_domains,
    )


def shop_policy(
    shop: ShopSettings, *, mailbox: MailAuthPolicy, helpdesk: MailAuthPolicy
) -> MailAuthPolicy:
    """The policy a shop's replies are checked under: its own override, else the operator's
    default for its destination kind."""
    if shop.mail_auth_policy:
        return shop.mail_auth_policy
    # A kind this version does not know gets the mailbox policy: an operator may set the
    # helpdesk one looser, and an unknown kind is not trusted with that (the notification
    # window reads it as a helpdesk instead: a digest's timing is harmless, this is not).
    kind = shop.destination_kind
    is_helpdesk = kind in {k.value for k in DestinationKind} and DestinationKind(kind).is_helpdesk
    return helpdesk if is_helpdesk else mailbox


def auth_verdict(result: AuthResult, policy: MailAuthPolicy) -> Verdict:
    """The decision table: what *policy* makes of *result*. Pure.

    DNS trouble that could change the answer defers under every policy except ``off``: the
    mail is checked again later, never accepted on a guess. A result marked ``unchecked``
    (no resolver: inspection of a saved mail) is accepted; the parser always has a resolver.
    """
    facts = result.summary()
    if policy == "off" or result.source == "unchecked":
        return Verdict("accept")
    if policy == "aligned_pass":
        if result.aligned == PASS:
            return Verdict("accept")
        if result.aligned == TEMPERROR:
            return Verdict(
                "defer", f"authentication could not be checked now, DNS did not answer ({facts})"
            )
        return Verdict(
            "refuse",
            f"no DKIM signature or SPF pass of the sender's domain "
            f"{result.from_domain or '?'} ({facts}); this shop requires one",
        )
    if result.dmarc == TEMPERROR:
        return Verdict("defer", f"DMARC could not be checked now, DNS did not answer ({facts})")
    if policy == "dmarc_pass":
        if result.dmarc == PASS:
            return Verdict("accept")
        return Verdict("refuse", f"DMARC did not pass ({facts}); this shop requires it")
    if result.dmarc != FAIL:
        return Verdict("accept")
    if policy == "dmarc_fail":
        return Verdict("refuse", f"DMARC failed ({facts})")
    if result.dmarc_policy == "reject":  # dmarc_reject
        return Verdict("refuse", f"DMARC failed and the sender's domain says p=reject ({facts})")
    return Verdict("accept")
