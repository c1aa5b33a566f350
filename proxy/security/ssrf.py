"""Which upstream destinations llmproxy may reach (server-side request forgery protection).

A provider URL is a request the daemon makes with a provider key attached, so a hostile or
mistaken URL must never reach cloud metadata services, the user's LAN, or the daemon's own host.

Rules, for every address a URL names or a host name resolves to:
- always refused: unspecified, link-local (169.254/16, fe80::/10: cloud metadata), known metadata
  addresses and names (fd00:ec2::254, 100.100.100.200, metadata.google.internal...), multicast,
  CGNAT 100.64/10, documentation, benchmarking and reserved ranges, anything IPv6 outside
  2000::/3 that is not loopback or unique-local, and any IPv6 form hiding a non-public IPv4
  address (mapped, compatible, SIIT, 6to4, NAT64, Teredo);
- loopback and private (RFC 1918, unique-local) only when the config allows it: globally
  (`[security.ssrf_protection] allow_localhost / allow_private_ips`) or for one provider's host
  (`allow_private_network = true`, for local models like Ollama);
- http and https only; IPv4 written in legacy forms (`2852039166`, `0251.0376.0251.0376`,
  `127.1`) refused outright, as every parser reads them differently.

A hidden IPv4 address that is public is judged as that address: on IPv6-only networks DNS64
answers with NAT64 addresses for every public IPv4 host. This module is pure (no I/O); the
connect-time half lives in `resolver.py`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from enum import Enum

from yarl import URL

from proxy.frozen import field, frozen

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Reach(Enum):
    PUBLIC = "public"
    LOOPBACK = "loopback"
    PRIVATE = "private"
    FORBIDDEN = "forbidden"


@frozen
class Verdict:
    reach: Reach
    reason: str


class DestinationRefused(ConnectionError):
    """An upstream connection refused by policy before any byte was sent."""


METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",
        "169.254.170.2",
        "100.100.100.200",
        "192.0.0.192",
        "fd00:ec2::254",
        "fd00:ec2::23",
    )
)
METADATA_HOSTS = frozenset(
    {
        "metadata.google.internal",
        "metadata.goog",
        "metadata",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.azure.internal",
    }
)
LOOPBACK_HOSTS = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})


def _nets(
    *pairs: tuple[str, str],
) -> tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...]:
    return tuple((ipaddress.ip_network(net), why) for net, why in pairs)


_V4_FORBIDDEN = _nets(
    ("0.0.0.0/8", "unspecified ('this network')"),
    ("169.254.0.0/16", "link-local (cloud metadata)"),
    ("100.64.0.0/10", "carrier-grade NAT"),
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("192.0.2.0/24", "documentation"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("192.88.99.0/24", "6to4 relay anycast"),
    ("198.18.0.0/15", "benchmarking"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
)
_V4_LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
_V4_PRIVATE = _nets(("10.0.0.0/8", ""), ("172.16.0.0/12", ""), ("192.168.0.0/16", ""))

_V6_FORBIDDEN = _nets(
    ("64:ff9b:1::/48", "local-use NAT64"),
    ("100::/64", "discard-only"),
    ("2001:db8::/32", "documentation"),
    ("3fff::/20", "documentation"),
    ("2001:2::/48", "benchmarking"),
    ("2001::/23", "IETF protocol assignments"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local"),
    ("ff00::/8", "multicast"),
)
_V6_MAPPED = ipaddress.ip_network("::ffff:0:0/96")
_V6_COMPATIBLE = ipaddress.ip_network("::/96")
_V6_SIIT = ipaddress.ip_network("::ffff:0:0:0/96")
_V6_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_V6_6TO4 = ipaddress.ip_network("2002::/16")
_V6_TEREDO = ipaddress.ip_network("2001::/32")
_V6_ULA = ipaddress.ip_network("fc00::/7")
_V6_GLOBAL = ipaddress.ip_network("2000::/3")


def classify_address(address: IPAddress) -> Verdict:
    """What kind of destination `address` is; FORBIDDEN carries the reason."""
    if isinstance(address, ipaddress.IPv6Address):
        address = ipaddress.IPv6Address(int(address))  # drop any %zone
    if address in METADATA_ADDRESSES:
        return Verdict(Reach.FORBIDDEN, "cloud metadata endpoint")
    if isinstance(address, ipaddress.IPv4Address):
        return _classify_v4(address)
    return _classify_v6(address)


def _classify_v4(address: ipaddress.IPv4Address) -> Verdict:
    for net, why in _V4_FORBIDDEN:
        if address in net:
            return Verdict(Reach.FORBIDDEN, f"{why} range {net}")
    if address in _V4_LOOPBACK:
        return Verdict(Reach.LOOPBACK, "loopback")
    if any(address in net for net, _ in _V4_PRIVATE):
        return Verdict(Reach.PRIVATE, "private network")
    return Verdict(Reach.PUBLIC, "public")


def _classify_v6(bare: ipaddress.IPv6Address) -> Verdict:
    if int(bare) == 0:
        return Verdict(Reach.FORBIDDEN, "unspecified address ::")
    if int(bare) == 1:
        return Verdict(Reach.LOOPBACK, "loopback")
    hidden = _embedded_v4(bare)
    for form, embedded in hidden:
        inner = _classify_v4(embedded)
        if inner.reach is not Reach.PUBLIC:
            return Verdict(Reach.FORBIDDEN, f"{form} address hiding {embedded} ({inner.reason})")
    if hidden:
        return Verdict(Reach.PUBLIC, f"{hidden[0][0]} form of a public IPv4 address")
    for net, why in _V6_FORBIDDEN:
        if bare in net:
            return Verdict(Reach.FORBIDDEN, f"{why} range {net}")
    if bare in _V6_ULA:
        return Verdict(Reach.PRIVATE, "unique-local network")
    if bare not in _V6_GLOBAL:
        return Verdict(Reach.FORBIDDEN, "reserved (outside global unicast 2000::/3)")
    return Verdict(Reach.PUBLIC, "public")


def _embedded_v4(address: ipaddress.IPv6Address) -> list[tuple[str, ipaddress.IPv4Address]]:
    """Every IPv4 address an IPv6 form carries, with the form's name."""
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _V6_MAPPED:
        return [("IPv4-mapped", low32)]
    if address in _V6_SIIT:
        return [("IPv4-translated", low32)]
    if address in _V6_COMPATIBLE:
        return [("IPv4-compatible", low32)]
    if address in _V6_NAT64:
        return [("NAT64", low32)]
    if address in _V6_6TO4 and address.sixtofour is not None:
        return [("6to4", address.sixtofour)]
    if address in _V6_TEREDO and address.teredo is not None:
        server, client = address.teredo
        return [("Teredo", server), ("Teredo", client)]
    return []


@frozen
class NetworkPolicy:
    """The rules in force: global allowances plus the hosts of providers that allow private
    networks (an allowance follows the host name, as that is all a resolver sees)."""

    allow_loopback: bool = False
    allow_private: bool = False
    private_hosts: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def build(
        cls, allow_loopback: bool, allow_private: bool, private_provider_urls: Iterable[str]
    ) -> NetworkPolicy:
        hosts = {h for url in private_provider_urls if (h := url_host(url))}
        return cls(allow_loopback, allow_private, frozenset(hosts))

    def allowances(self, host: str) -> tuple[bool, bool]:
        """(loopback allowed, private allowed) for connections to `host`."""
        local = normalize_host(host) in self.private_hosts
        return self.allow_loopback or local, self.allow_private or local

    def address_refusal(self, address: str, host: str) -> str | None:
        """Why connecting to `address` (resolved from `host`) is refused, or None."""
        try:
            parsed = ipaddress.ip_address(address)
        except ValueError:
            return f"resolver returned something that is not an IP address: {address!r}"
        loopback, private = self.allowances(host)
        return refusal(classify_address(parsed), str(parsed), loopback, private)

    def url_refusal(self, url: str) -> str | None:
        loopback, private = self.allowances(url_host(url) or "")
        return url_refusal(url, allow_loopback=loopback, allow_private=private)


def refusal(verdict: Verdict, what: str, allow_loopback: bool, allow_private: bool) -> str | None:
    if verdict.reach is Reach.PUBLIC:
        return None
    if verdict.reach is Reach.LOOPBACK and allow_loopback:
        return None
    if verdict.reach is Reach.PRIVATE and allow_private:
        return None
    if verdict.reach is Reach.FORBIDDEN:
        return f"{what} is never allowed: {verdict.reason}"
    setting = "allow_localhost" if verdict.reach is Reach.LOOPBACK else "allow_private_ips"
    return (
        f"{what} is a {verdict.reason} address: set allow_private_network = true on this "
        f"provider, or {setting} = true in [security.ssrf_protection]"
    )


def normalize_host(host: str) -> str:
    return host.strip().lower().rstrip(".")


def url_host(url: str) -> str | None:
    """The host aiohttp would connect to (IDNA-encoded, lower case, no trailing dot)."""
    try:
        host = URL(url).host
    except (ValueError, TypeError):
        return None
    return normalize_host(host) if host else None


def url_refusal(url: str, *, allow_loopback: bool, allow_private: bool) -> str | None:
    """Why `url` may not be used as a provider URL, or None. Host names are only checked by
    name here; their addresses are checked when connecting."""
    try:
        parsed = URL(url)
    except (ValueError, TypeError) as exc:
        return f"not a valid URL: {exc}"
    if parsed.scheme not in ("http", "https"):
        return f"scheme {parsed.scheme or '(none)'!r} is not allowed: use http or https"
    host = normalize_host(parsed.host or "")
    if not host:
        return "the URL has no host"
    if host in METADATA_HOSTS:
        return f"host {host} is never allowed: cloud metadata service"
    if host in LOOPBACK_HOSTS or host.endswith(".localhost"):
        verdict = Verdict(Reach.LOOPBACK, "loopback")
        return refusal(verdict, f"host {host}", allow_loopback, allow_private)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if (legacy := legacy_ipv4(host)) is not None:
            return (
                f"host {host} is an IPv4 address in a legacy notation (it means {legacy}): "
                "write addresses as four decimal numbers"
            )
        return None
    return refusal(classify_address(address), f"address {address}", allow_loopback, allow_private)


def legacy_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The address `inet_aton` would read from a numeric host that is not a dotted quad
    (`2852039166`, `0x7f.1`, `0251.0376.0251.0376`, `127.1`), else None."""
    if not host or not set(host) <= set("0123456789abcdefx."):
        return None
    import socket  # only here: loading the config for `route test` needs no sockets

    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None
