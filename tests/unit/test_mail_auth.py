"""mail_auth: DKIM (dkimpy), SPF (pyspf), DMARC alignment and policy, Authentication-Results.

DNS answers come from a StaticResolver; the DKIM key is generated with the openssl CLI.
"""

from __future__ import annotations

import base64
import email
import shutil
import subprocess
from email import policy
from email.message import EmailMessage, Message

import dkim
import pytest

from reply_parser.mail_auth import (
    AuthResult,
    StaticResolver,
    aligned,
    auth_verdict,
    evaluate,
    org_domain,
    parse_dmarc,
)

PEER = "192.0.2.10"


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, str]:
    openssl = shutil.which("openssl")
    assert openssl, "the openssl CLI is needed to generate the test DKIM key"
    path = tmp_path_factory.mktemp("dkim") / "k.pem"
    subprocess.run([openssl, "genrsa", "-out", str(path), "2048"], check=True, capture_output=True)
    der = subprocess.run(
        [openssl, "rsa", "-in", str(path), "-pubout", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    return path.read_bytes(), "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()


def _raw(sender: str = "seller@shop.example", extra: dict[str, str] | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "tok@chat-seller-us.bridge.example"
    msg["Subject"] = "Re: A new message"
    msg["Message-ID"] = "<a1@shop.example>"
    for name, value in (extra or {}).items():
        msg[name] = value
    msg.set_content("Yes, in stock.")
    return msg.as_bytes(policy=policy.SMTP)


def _sign(raw: bytes, private: bytes, domain: str) -> bytes:
    sig = dkim.sign(
        raw,
        b"s1",
        domain.encode(),
        private,
        include_headers=[b"from", b"to", b"subject", b"message-id"],
    )
    return sig + raw


def _msg(raw: bytes) -> Message:
    return email.message_from_bytes(raw, policy=policy.default)


def _eval(
    raw: bytes,
    resolver: StaticResolver,
    *,
    mail_from: str = "seller@shop.example",
    trusted: frozenset[str] = frozenset(),
) -> AuthResult:
    return evaluate(
        raw, _msg(raw), peer_ip=PEER, mail_from=mail_from, resolver=resolver, trusted_ids=trusted
    )


def _outcome(result: AuthResult, policy: str) -> str:
    return auth_verdict(result, policy).outcome  # type: ignore[arg-type]


def test_aligned_dkim_signature_passes_dmarc(key: tuple[bytes, str]) -> None:
    private, txt = key
    raw = _sign(_raw(), private, "shop.example")
    resolver = StaticResolver(
        {
            ("s1._domainkey.shop.example", "TXT"): [txt],
            ("_dmarc.shop.example", "TXT"): ["v=DMARC1; p=reject"],
        }
    )
    result = _eval(raw, resolver, mail_from="bounce@esp.example")
    assert (result.dkim, result.dmarc) == ("pass", "pass")
    assert _outcome(result, "dmarc_pass") == "accept"


def test_signature_of_another_domain_does_not_align(key: tuple[bytes, str]) -> None:
    private, txt = key
    raw = _sign(_raw(), private, "esp.example")
    resolver = StaticResolver(
        {
            ("s1._domainkey.esp.example", "TXT"): [txt],
            ("_dmarc.shop.example", "TXT"): ["v=DMARC1; p=reject"],
        }
    )
    result = _eval(raw, resolver, mail_from="bounce@esp.example")
    assert (result.dkim, result.dmarc, result.dmarc_policy) == ("pass", "fail", "reject")
    assert "p=reject" in auth_verdict(result, "dmarc_reject").reason


def test_altered_body_fails_dkim(key: tuple[bytes, str]) -> None:
    private, txt = key
    raw = _sign(_raw(), private, "shop.example").replace(b"Yes, in stock.", b"No, sold out.")
    resolver = StaticResolver(
        {
            ("s1._domainkey.shop.example", "TXT"): [txt],
            ("_dmarc.shop.example", "TXT"): ["v=DMARC1; p=quarantine"],
        }
    )
    result = _eval(raw, resolver, mail_from="x@esp.example")
    assert (result.dkim, result.dmarc) == ("fail", "fail")
    assert _outcome(result, "dmarc_reject") == "accept"
    assert _outcome(result, "dmarc_fail") == "refuse"


def test_spf_pass_on_an_aligned_subdomain_passes_relaxed_dmarc() -> None:
    resolver = StaticResolver(
        {
            ("mail.shop.example", "TXT"): ["v=spf1 include:_spf.esp.example -all"],
            ("_spf.esp.example", "TXT"): ["v=spf1 ip4:192.0.2.0/24 ~all"],
            ("_dmarc.shop.example", "TXT"): ["v=DMARC1; p=reject; aspf=r"],
        }
    )
    result = _eval(_raw(), resolver, mail_from="bounce@mail.shop.example")
    assert (result.spf, result.dmarc) == ("pass", "pass")


def test_strict_spf_alignment_refuses_a_subdomain() -> None:
    resolver = StaticResolver(
        {
            ("mail.shop.example", "TXT"): ["v=spf1 ip4:192.0.2.10 -all"],
            ("_dmarc.shop.example", "TXT"): ["v=DMARC1; p=reject; aspf=s"],
        }
    )
    result = _eval(_raw(), resolver, mail_from="bounce@mail.shop.example")
    assert result.dmarc == "fail"


def test_spf_fail_from_a_foreign_ip() -> None:
    resolver = StaticResolver({("shop.example", "TXT"): ["v=spf1 ip4:198.51.100.1 -all"]})
    result = _eval(_raw(), resolver)
    assert (result.spf, result.dmarc) == ("fail", "none")


def test_no_dmarc_record_never_refuses_under_the_default_policy() -> None:
    result = _eval(_raw(), StaticResolver())
    assert result.dmarc == "none"
    assert _outcome(result, "dmarc_reject") == "accept"
    assert _outcome(result, "dmarc_pass") == "refuse"


def test_subdomain_policy_applies_to_a_subdomain_sender() -> None:
    resolver = StaticResolver({("_dmarc.shop.example", "TXT"): ["v=DMARC1; p=none; sp=reject"]})
    result = _eval(_raw("a@eu.shop.example"), resolver, mail_from="a@other.example")
    assert (result.dmarc, result.dmarc_policy) == ("fail", "reject")


def test_dmarc_dns_trouble_is_deferred_never_accepted() -> None:
    resolver = StaticResolver({("_dmarc.shop.example", "TXT"): "temperror"})  # type: ignore[dict-item]
    result = _eval(_raw(), resolver)
    assert result.dmarc == "temperror"
    for name in ("dmarc_reject", "dmarc_fail", "dmarc_pass"):
        assert _outcome(result, name) == "defer"
    # Nothing of shop.example authenticated this mail: no record the DNS could still return
    # would make it pass, so the aligned policy refuses at once instead of waiting.
    assert result.aligned == "fail" and _outcome(result, "aligned_pass") == "refuse"


def test_spf_dns_trouble_of_the_authors_domain_defers_the_aligned_check() -> None:
    resolver = StaticResolver({("shop.example", "TXT"): "temperror"})  # type: ignore[dict-item]
    result = _eval(_raw(), resolver)
    assert (result.spf, result.aligned) == ("temperror", "temperror")
    assert _outcome(result, "aligned_pass") == "defer"


def test_dns_trouble_of_an_unaligned_envelope_domain_does_not_defer() -> None:
    resolver = StaticResolver({("evil.example", "TXT"): "temperror"})  # type: ignore[dict-item]
    result = _eval(_raw(), resolver, mail_from="x@evil.example")
    assert (result.spf, result.aligned) == ("temperror", "fail")
    assert _outcome(result, "aligned_pass") == "refuse"


def test_dkim_key_dns_trouble_of_the_authors_domain_defers(key: tuple[bytes, str]) -> None:
    private, _ = key
    raw = _sign(_raw(), private, "shop.example")
    resolver = StaticResolver({("s1._domainkey.shop.example", "TXT"): "temperror"})  # type: ignore[dict-item]
    result = _eval(raw, resolver, mail_from="bounce@esp.example")
    assert result.dkim_temp_domains == ("shop.example",) and result.aligned == "temperror"
    assert _outcome(result, "aligned_pass") == "defer"


def test_aligned_pass_needs_no_dmarc_record(key: tuple[bytes, str]) -> None:
    private, txt = key
    raw = _sign(_raw(), private, "shop.example")
    result = _eval(
        raw,
        StaticResolver({("s1._domainkey.shop.example", "TXT"): [txt]}),
        mail_from="bounce@esp.example",
    )
    assert (result.dmarc, result.aligned) == ("none", "pass")
    assert _outcome(result, "aligned_pass") == "accept"
    assert _outcome(_eval(_raw(), StaticResolver()), "aligned_pass") == "refuse"


def test_a_strict_dmarc_record_makes_the_aligned_check_strict() -> None:
    resolver = StaticResolver(
        {
            ("mail.shop.example", "TXT"): ["v=spf1 ip4:192.0.2.10 -all"],
            ("_dmarc.shop.example", "TXT"): ["v=DMARC1; p=none; aspf=s"],
        }
    )
    result = _eval(_raw(), resolver, mail_from="bounce@mail.shop.example")
    assert (result.spf, result.aligned) == ("pass", "fail")
    relaxed = StaticResolver({("mail.shop.example", "TXT"): ["v=spf1 ip4:192.0.2.10 -all"]})
    assert _eval(_raw(), relaxed, mail_from="bounce@mail.shop.example").aligned == "pass"


AR = (
    "mx.bridge.example; dkim=pass header.d=esp.example; spf=pass "
    "smtp.mailfrom=bounce@esp.example; dmarc=fail (p=REJECT sp=REJECT dis=NONE) "
    "header.from=shop.example"
)


def test_results_of_our_own_mx_are_trusted() -> None:
    raw = _raw(extra={"Authentication-Results": AR})
    result = _eval(raw, StaticResolver(), trusted=frozenset({"mx.bridge.example"}))
    assert (result.dmarc, result.dmarc_policy, result.source) == (
        "fail",
        "reject",
        "authres:mx.bridge.example",
    )
    assert _outcome(result, "dmarc_reject") == "refuse"


def test_results_from_an_untrusted_authserv_id_are_ignored() -> None:
    forged = AR.replace("dmarc=fail (p=REJECT sp=REJECT dis=NONE)", "dmarc=pass").replace(
        "mx.bridge.example", "mx.forger.example"
    )
    raw = _raw(extra={"Authentication-Results": forged})
    resolver = StaticResolver({("_dmarc.shop.example", "TXT"): ["v=DMARC1; p=reject"]})
    result = _eval(raw, resolver, trusted=frozenset({"mx.bridge.example"}))
    assert (result.dmarc, result.source) == ("fail", "local")


def test_without_a_resolver_nothing_is_checked_or_refused() -> None:
    raw = _raw()
    result = evaluate(raw, _msg(raw), peer_ip=PEER, mail_from="", resolver=None)
    assert result.source == "unchecked" and _outcome(result, "dmarc_fail") == "accept"


@pytest.mark.parametrize(
    "domain, org",
    [
        ("shop.example", "shop.example"),
        ("mail.eu.shop.example", "shop.example"),
        ("Mail.Shop.Example.", "shop.example"),
        ("mail.shop.co.uk", "shop.co.uk"),
        ("a.b.shop.com.au", "shop.com.au"),
        # the Public Suffix List's answers, its private section included
        ("mail.shop.uk.com", "shop.uk.com"),
        ("www.seller.github.io", "seller.github.io"),
        ("shop.eu.org", "shop.eu.org"),
        ("mail.shop.com.bd", "shop.com.bd"),
        ("city.kobe.jp", "city.kobe.jp"),
        ("shop.city.kobe.jp", "city.kobe.jp"),
        # a public suffix has no organizational domain
        ("co.uk", ""),
        ("github.io", ""),
        ("com", ""),
    ],
)
def test_org_domain(domain: str, org: str) -> None:
    assert org_domain(domain) == org


@pytest.mark.parametrize(
    "domain, from_domain, mode, expected",
    [
        ("mail.shop.co.uk", "shop.co.uk", "r", True),
        ("mail.shop.co.uk", "shop.co.uk", "s", False),
        ("evil.uk.com", "shop.uk.com", "r", False),
        ("evil.github.io", "github.io", "r", False),  # a public suffix as author: no relatives
        ("github.io", "evil.github.io", "r", False),
        ("github.io", "github.io", "r", True),  # only itself, strictly equal
        ("GitHub.io.", "github.io", "s", True),
    ],
)
def test_relaxed_alignment_needs_a_shared_organizational_domain(
    domain: str, from_domain: str, mode: str, expected: bool
) -> None:
    assert aligned(domain, from_domain, mode) is expected


def test_malformed_dmarc_record_is_no_record() -> None:
    assert parse_dmarc("v=DMARC1; p=maybe") is None
    assert parse_dmarc("p=reject") is None
