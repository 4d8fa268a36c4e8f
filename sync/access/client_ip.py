"""Request context shared by the console, the APIs and the domains: the client's IP address.

One rule for every place that records or counts by address (django-axes' lock-out, the staff
audit, the catalog's change log, the security log): ``X-Forwarded-For`` is believed only for
the hops that ``TRUSTED_PROXY_COUNT`` says are ours (docs/security.md, "Client addresses").

With ``TRUSTED_PROXY_COUNT = 0`` (the default) the address is the peer's (``REMOTE_ADDR``) and
the header is ignored: anyone can write it. With ``N`` proxies in front, the chain is the
header's entries followed by the peer, the last ``N`` of them are our proxies, and the entry
before them is the client: each proxy appends the address it saw, so that entry was written
by our outermost proxy, never by the client. A chain shorter than ``N + 1`` came past our
proxies (or the header was stripped): only the peer is known then, and it is used.
"""

from __future__ import annotations

import ipaddress
import logging

from django.conf import settings
from django.http import HttpRequest

logger = logging.getLogger(__name__)


def _address(value: str) -> str | None:
    """``value`` as a normalised IP address (a port or IPv6 brackets removed), else None."""
    value = value.strip()
    if value.startswith("["):  # "[2001:db8::1]:443"
        value = value[1:].split("]", 1)[0]
    elif value.count(":") == 1:  # "192.0.2.1:443"
        value = value.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def client_ip(request: HttpRequest) -> str | None:
    """The client's address as far as our own proxies vouch for it (module docstring)."""
    peer = _address(request.META.get("REMOTE_ADDR") or "")
    trusted = settings.TRUSTED_PROXY_COUNT
    if trusted <= 0:
        return peer
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    chain = [entry for entry in (e.strip() for e in forwarded.split(",")) if entry]
    chain.append(peer or "")
    if len(chain) <= trusted:
        logger.warning(
            "X-Forwarded-For has %s hop(s), fewer than the %s trusted proxies: "
            "using the peer address",
            len(chain) - 1,
            trusted,
        )
        return peer
    found = _address(chain[-(trusted + 1)])
    if found is None:
        logger.warning(
            "X-Forwarded-For entry written by a trusted proxy is not an IP "
            "address: using the peer address"
        )
        return peer
    return found
