"""Who a visitor is on the network: their address, read from the proxy chain.

On a Space the app's peer is the platform's proxy, and the visitor's address is in
``X-Forwarded-For``, where each proxy appends the address it saw. Only the right end of that
list is written by proxies; everything to the left of the visitor's own entry is whatever the
visitor sent. Nobody documents how many proxies a Space has, so the chain is not counted
blindly: as Rails' ``RemoteIp`` does, entries are read from the right, skipping internal
addresses (loopback, private, link-local, unique-local) and the owner's ``TRUSTED_PROXIES``;
then ``FORWARDED_HOPS`` public proxies are stepped over (1: the entry the nearest proxy wrote).
An internal hop the platform adds therefore changes nothing, and private addresses a visitor
writes on the left gain them nothing.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

log = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# loopback, private, link-local, unique-local: a proxy's address, never a visitor's on the Internet
INTERNAL = tuple(
    ipaddress.ip_network(n)
    for n in (
        "127.0.0.0/8",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "169.254.0.0/16",
        "::1/128",
        "fc00::/7",
        "fe80::/10",
    )
)
PORT = re.compile(r"^\[(?P<v6>[^\]]+)\](?::\d+)?$|^(?P<v4>\d{1,3}(?:\.\d{1,3}){3}):\d+$")


def parse_networks(text: str) -> tuple[Network, ...]:
    """``TRUSTED_PROXIES``: comma-separated addresses or CIDRs (ValueError names a bad one)."""
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in text.split(",") if item.strip())


def _ip(entry: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An entry as an address (a port or IPv6 brackets dropped); None if it is not one."""
    found = PORT.match(entry)
    if found:
        entry = found["v6"] or found["v4"]
    try:
        ip = ipaddress.ip_address(entry)
    except ValueError:
        return None
    return ip.ipv4_mapped or ip if isinstance(ip, ipaddress.IPv6Address) else ip


class AddressReader:
    """Reads a request's visitor address. ``hops == 0``: no proxy is trusted, the peer is the visitor."""

    def __init__(self, hops: int, trusted: tuple[Network, ...] = ()):
        self.hops, self.trusted = hops, trusted
        self._described = False

    def _internal(self, entry: str) -> bool:
        ip = _ip(entry)
        return ip is not None and any(ip in network for network in (*INTERNAL, *self.trusted))

    def address(self, headers: Mapping[str, str], peer: str | None) -> str:
        chain = [e.strip() for e in headers.get("x-forwarded-for", "").split(",") if e.strip()]
        if self.hops <= 0 or not chain:
            return peer or "unknown"
        internal = [self._internal(e) for e in chain]
        kept = len(chain)
        while kept and internal[kept - 1]:
            kept -= 1
        # Every entry internal (a visitor inside the platform's network): the one the nearest proxy
        # wrote, never one further left, which the visitor could have written.
        taken = max(0, kept - self.hops) if kept else len(chain) - 1
        if not self._described:
            self._described = True
            self._describe(internal, taken)
        ip = _ip(chain[taken])  # a port or brackets never make a new visitor
        return str(ip) if ip else chain[taken]

    def of(self, request: Any) -> str:
        """The address of a request as Starlette or Gradio hands it over: its headers and its peer."""
        return self.address(request.headers, request.client.host if request.client else None)

    def _describe(self, internal: Sequence[bool], taken: int) -> None:
        """The chain's shape for the owner's log, once (kinds, never addresses): enough to set
        TRUSTED_PROXIES or FORWARDED_HOPS from the Space's logs if the platform's chain needs it."""
        log.info(
            "visitor addresses: X-Forwarded-For has %d entries [%s]; the visitor is entry %d (FORWARDED_HOPS=%d)",
            len(internal),
            ", ".join("internal" if i else "public" for i in internal),
            taken + 1,
            self.hops,
        )
