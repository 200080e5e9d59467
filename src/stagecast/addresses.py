"""Client addresses as the per-address limits count them (HTTP and RTMP alike)."""

from __future__ import annotations

import ipaddress


def peer_ip(peer: object) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP of a socket peer (IPv4-mapped IPv6 as IPv4); None for a Unix socket."""
    host = peer[0] if isinstance(peer, tuple) and peer else None
    try:
        ip = ipaddress.ip_address(host) if isinstance(host, str) else None
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def client_address(peer: object) -> str | None:
    """What the per-address cap counts: the IP, or its /64 for IPv6 (one host's share)."""
    ip = peer_ip(peer)
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return None if ip is None else str(ip)  # None: a Unix socket, no address to count
