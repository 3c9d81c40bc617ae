"""Which Host headers a local web server answers: the defence against DNS rebinding.

A web page the user visits can make the browser send requests to 127.0.0.1 under a name the attacker
controls (``evil.example.com`` resolving to 127.0.0.1). Such requests carry that name in their Host
header. Our servers answer only a Host that is an IP address literal (a rebinding attack needs a name),
``localhost``, this machine's host name, or a name the user allowed; anything else gets 403.
"""
from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable


def host_name(header: str) -> str:
    """The name part of a Host header: 'a.b:80' -> 'a.b', '[::1]:80' -> '::1', lower case."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else header[1:]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def host_allowed(header: str | None, extra: Iterable[str] = ()) -> bool:
    """True when a request with this Host header may be answered (see the module docstring)."""
    if not header:
        return False  # HTTP/1.1 requires a Host; browsers always send one
    name = host_name(header)
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        pass
    machine = {socket.gethostname().lower(), socket.getfqdn().lower()}
    return name in {"localhost", *machine, *(h.lower() for h in extra)}
