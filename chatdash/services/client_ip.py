"""The client's address for per-IP limits, seen through trusted reverse proxies.

Behind a proxy every request comes from the proxy's address, so per-IP limits
would lump all shoppers (and the store's own backend) together. The proxy
tells the real address in ``X-Forwarded-For``, but any client can send that
header too, so it is believed only when the direct peer is one of the proxies
configured in ``CHATDASH_TRUSTED_PROXIES`` (comma-separated IPs or CIDRs,
default none).

``client_ip(peer, forwarded_for)`` is the one function every per-IP limit uses:
the HTTP routes pass ``request.client.host`` and the ``X-Forwarded-For``
header; a Reflex event handler can pass the socket's peer address and the
same header from the websocket's handshake. Plain Python, no web framework.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
UNKNOWN = "?"


@lru_cache(maxsize=8)
def parse_trusted_proxies(raw: str) -> tuple[Network, ...]:
    """``"10.0.0.1, 192.168.0.0/16, ::1"`` -> networks; ValueError names a bad entry."""
    networks = []
    for entry in (part.strip() for part in raw.split(",")):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(
                f"trusted proxy {entry!r} is not an IP address or CIDR range (e.g. 10.0.0.1 or 10.0.0.0/8)"
            ) from None
    return tuple(networks)


def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    # An IPv4 peer on a dual-stack socket shows as ::ffff:a.b.c.d.
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


def _trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address | None, proxies: tuple[Network, ...]) -> bool:
    return address is not None and any(address in network for network in proxies)


def client_ip(peer: str | None, forwarded_for: str | None, trusted_proxies: str | None = None) -> str:
    """The address per-IP limits should count.

    ``peer`` is the direct TCP peer; ``forwarded_for`` the ``X-Forwarded-For``
    header (None when absent). The header is read only when the peer is a
    trusted proxy; then, walking from the right (the hop our proxy appended),
    the first address that is not itself a trusted proxy is the client. The
    proxies default to the ``trusted_proxies`` setting.
    """
    if not peer:
        return UNKNOWN
    if trusted_proxies is None:
        from chatdash.settings import get_settings

        trusted_proxies = get_settings().trusted_proxies
    proxies = parse_trusted_proxies(trusted_proxies)
    if not proxies or not forwarded_for or not _trusted(_address(peer), proxies):
        return peer
    client = peer
    for hop in reversed(forwarded_for.split(",")):
        address = _address(hop)
        if address is None:
            # Not an address: nothing left of it can be trusted either.
            break
        client = str(address)
        if not _trusted(address, proxies):
            break
    return client
