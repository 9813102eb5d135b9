"""The sellers' DNS, locally: a tiny UDP name server on loopback (dnspython wire format).

The reply parser authenticates every reply (DKIM keys, SPF and DMARC records are DNS TXT
records of the sender's domain). Locally and in tests it asks this server
(``BRIDGE_AUTH_DNS_SERVER``), so no query ever leaves 127.0.0.1. The records are a dict the
owner may change while the server runs (a test publishes a DKIM key, or marks a name as
failing, which then answers SERVFAIL like a broken or unreachable name server).
"""

from __future__ import annotations

import asyncio
import typing
from dataclasses import dataclass, field

import dns.message
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

TTL_S = 1  # the parser caches answers; short TTLs keep a test's changes visible

# The dev sellers' domains send from loopback: replies from the mail sink (and the tests'
# SMTP clients) pass SPF for them, as a seller's own mail server would for its domain.
DEV_SENDER_DOMAINS = ("shop.localhost", "shop.test")
LOOPBACK_SPF = "v=spf1 ip4:127.0.0.0/8 -all"


@dataclass
class DevZone:
    """Records by (name, type), values as text; names in ``failing`` answer SERVFAIL."""

    records: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    failing: set[str] = field(default_factory=set)

    @classmethod
    def default(cls) -> DevZone:
        return cls({(domain, "TXT"): [LOOPBACK_SPF] for domain in DEV_SENDER_DOMAINS})

    def set(self, name: str, rtype: str, values: list[str]) -> None:
        self.records[(_norm(name), rtype.upper())] = list(values)

    def fail(self, name: str, failing: bool = True) -> None:
        (self.failing.add if failing else self.failing.discard)(_norm(name))

    def answer(self, query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query)
        for question in query.question:
            name = _norm(question.name.to_text())
            if name in self.failing:
                response.set_rcode(dns.rcode.SERVFAIL)
                return response
            rtype = dns.rdatatype.to_text(question.rdtype)
            values = self.records.get((name, rtype), [])
            if not values:
                if not any(n == name for n, _ in self.records):
                    response.set_rcode(dns.rcode.NXDOMAIN)
                continue
            rdatas = [_rdata(question.rdtype, v) for v in values]
            response.answer.append(dns.rrset.from_rdata_list(question.name, TTL_S, rdatas))
        return response


def _norm(name: str) -> str:
    return name.lower().rstrip(".")


def _rdata(rdtype: dns.rdatatype.RdataType, value: str) -> dns.rdata.Rdata:
    if rdtype == dns.rdatatype.TXT:  # one string per 255 octets, as TXT requires
        chunks = [value[i : i + 255] for i in range(0, len(value), 255)] or [""]
        value = " ".join('"' + c.replace("\\", "\\\\").replace('"', '\\"') + '"' for c in chunks)
    return dns.rdata.from_text(dns.rdataclass.IN, rdtype, value)


class _DnsProtocol(asyncio.DatagramProtocol):
    def __init__(self, zone: DevZone) -> None:
        self.zone = zone
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            query = dns.message.from_wire(data)
        except Exception:  # noqa: BLE001 - not DNS: nothing to answer
            return
        if self.transport is not None:
            self.transport.sendto(self.zone.answer(query).to_wire(), addr)


async def start_dev_dns(zone: DevZone, host: str, port: int) -> asyncio.DatagramTransport:
    """Serve *zone* over UDP on the current loop until the transport is closed."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _DnsProtocol(zone), local_addr=(host, port)
    )
    return transport
