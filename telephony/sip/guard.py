"""Per-source throttling, the way Kamailio's pike and fail2ban protect a SIP server.

Two rules, per source IP address (sans-IO: the caller passes the time):

* **Flood** — more than ``flood_limit`` requests within ``flood_window`` seconds: every
  request from that address is dropped for ``flood_ban`` seconds (pike's 30 per 2 s,
  then a 300 s ban through an htable, in Kamailio's security tutorial).
* **Authentication failures** — ``auth_limit`` wrong credentials within
  ``auth_window`` seconds: banned for ``auth_ban`` seconds (fail2ban's findtime /
  maxretry / bantime; 600 s / 10 / 1800 s).

Dropped means silence: a scanner learns nothing.  Exempt networks (loopback by default,
as fail2ban does) are never counted, so local load tests and health checks pass.  At
most ``max_tracked`` addresses are remembered; the least recently seen go first.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict, deque
from collections.abc import Iterable

import attrs

__all__ = ("SourceGuard", "parse_networks")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(text: str) -> tuple[Network, ...]:
    """``"127.0.0.0/8, ::1"`` → networks.  :raises ValueError: naming the bad entry."""
    networks = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"not an IP network: {item!r}") from None
    return tuple(networks)


@attrs.define
class _Source:
    requests: deque[float] = attrs.Factory(deque)
    failures: deque[float] = attrs.Factory(deque)
    banned_until: float = 0.0
    reason: str = ""


@attrs.define
class SourceGuard:
    """Decides whether to serve a request from an address, and bans the abusive."""

    exempt: tuple[Network, ...] = attrs.field(factory=lambda: parse_networks("127.0.0.0/8, ::1"))
    flood_limit: int = 30
    flood_window: float = 2.0
    flood_ban: float = 300.0
    auth_limit: int = 10
    auth_window: float = 600.0
    auth_ban: float = 1800.0
    max_tracked: int = 100_000
    _sources: OrderedDict[str, _Source] = attrs.field(factory=OrderedDict, repr=False)
    _exempt_cache: dict[str, bool] = attrs.field(factory=dict, repr=False)
    #: Addresses exempt because they are a gateway's, by gateway (see :meth:`trust`).
    _trusted: dict[str, frozenset[str]] = attrs.field(factory=dict, repr=False)

    def trust(self, key: str, hosts: Iterable[str]) -> None:
        """Exempt *hosts* as *key*'s addresses (a gateway's, replacing those it had): a
        carrier sending more than the flood limit must not be banned.  Any ban on
        them is lifted."""
        self._trusted[key] = frozenset(hosts)
        self._exempt_cache.clear()
        self.unban(self._trusted[key])

    def _is_exempt(self, host: str) -> bool:
        cached = self._exempt_cache.get(host)
        if cached is None:
            if any(host in hosts for hosts in self._trusted.values()):
                self._exempt_cache[host] = True
                return True
            try:
                address = ipaddress.ip_address(host)
            except ValueError:
                cached = False
            else:
                cached = any(address in net for net in self.exempt)
            if len(self._exempt_cache) > 10_000:
                self._exempt_cache.clear()
            self._exempt_cache[host] = cached
        return cached

    def _source(self, host: str) -> _Source:
        source = self._sources.get(host)
        if source is None:
            source = self._sources[host] = _Source()
            while len(self._sources) > self.max_tracked:
                self._sources.popitem(last=False)
        else:
            self._sources.move_to_end(host)
        return source

    def allow(self, host: str, now: float) -> bool:
        """Count a request from *host*; False when it must be dropped."""
        if self._is_exempt(host):
            return True
        source = self._source(host)
        if now < source.banned_until:
            return False
        requests = source.requests
        requests.append(now)
        while requests and requests[0] <= now - self.flood_window:
            requests.popleft()
        if len(requests) > self.flood_limit:
            self._ban(source, now + self.flood_ban, "flood")
            return False
        return True

    def auth_failed(self, host: str, now: float) -> bool:
        """Count wrong credentials from *host*; True when this failure banned it."""
        if self._is_exempt(host):
            return False
        source = self._source(host)
        failures = source.failures
        failures.append(now)
        while failures and failures[0] <= now - self.auth_window:
            failures.popleft()
        if len(failures) >= self.auth_limit:
            self._ban(source, now + self.auth_ban, "authentication failures")
            return True
        return False

    def _ban(self, source: _Source, until: float, reason: str) -> None:
        source.banned_until = until
        source.reason = reason
        source.requests.clear()
        source.failures.clear()

    def banned(self, now: float) -> dict[str, tuple[float, str]]:
        """Addresses banned at *now*: until when, and why (for the status page)."""
        return {
            host: (s.banned_until, s.reason)
            for host, s in self._sources.items()
            if s.banned_until > now
        }

    def unban(self, hosts: Iterable[str]) -> None:
        """Lift bans (an operator's command in the manhole)."""
        for host in hosts:
            source = self._sources.get(host)
            if source is not None:
                source.banned_until = 0.0
