"""``twistd telephony``: the command-line options and the service tree.

:class:`Options` turns the command line (and a TOML file) into a validated
:class:`~telephony.config.Config`; :func:`makeService` wires one ``MultiService``
from it and does nothing else.  Children start in the order they are added and
stop in reverse: store, SIP, HTTP, manhole.
"""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path
from typing import Any, ClassVar

from twisted.application import service
from twisted.application.internet import StreamServerEndpointService
from twisted.internet import endpoints
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IListeningPort, IReactorTime
from twisted.logger import Logger
from twisted.python import usage
from twisted.web.server import Site

from telephony._version import __version__
from telephony.api._http import Route
from telephony.api.builtin_apps import direct_dial_fields
from telephony.api.calls_v1 import CallsAPI
from telephony.api.conference_v1 import ConferenceAPI
from telephony.api.directory_v1 import DirectoryAPI
from telephony.api.recordings_v1 import RecordingsAPI
from telephony.api.site import build_site
from telephony.calls.service import CallsService
from telephony.config import DEFAULTS, Config, ConfigError, build_config, load_toml
from telephony.credentials import Credentials, load_or_create_credentials
from telephony.directory import Directory
from telephony.directory.database import Database, SchemaError, open_sqlite
from telephony.directory.service import DIRECT_DIAL
from telephony.runtime import GCTuning, filter_log_level
from telephony.sipservice import SIPService
from telephony.trunks.resolver import SipResolver
from telephony.trunks.service import TrunksService

__all__ = ("Options", "makeService")

log = Logger()

DATABASE_FILE = "telephony.sqlite3"


class Options(usage.Options):
    """Options of ``twistd telephony``; a bad value stops start-up with one line."""

    synopsis = "[options]"
    longdesc = (
        "A programmable SIP server with a Plivo-compatible REST API. Every option may "
        "also be set in the TOML file given by --config (same names); the command line wins."
    )
    optParameters: ClassVar[list[list[Any]]] = [
        ["config", "c", None, "TOML file with any of the options below."],
        [
            "data-dir",
            "d",
            None,
            f"Database, recordings, caches, credentials [{DEFAULTS['data-dir']}]",
        ],
        ["sip-listen", None, None, f"SIP UDP and TCP address HOST:PORT [{DEFAULTS['sip-listen']}]"],
        ["domain", None, None, f"SIP domain and digest realm [{DEFAULTS['domain']}]"],
        ["http", None, None, f"REST API and status page, strports [{DEFAULTS['http']}]"],
        ["manhole", None, None, "SSH manhole strports, loopback only (off by default)"],
        ["manhole-keys", None, None, "authorized_keys file for manhole logins"],
        ["manhole-passwd", None, None, "password file (python -m telephony.manhole USER)"],
        ["auth-id", None, None, "REST auth ID (MA + 18 upper-case letters/digits) [generated]"],
        ["auth-token", None, None, "REST auth token (20-64 letters/digits) [generated]"],
        [
            "blocked-user-agents",
            None,
            None,
            f"Refuse SIP requests whose User-Agent matches [{DEFAULTS['blocked-user-agents']}]",
        ],
        ["min-expires", None, None, f"Shortest registration, seconds [{DEFAULTS['min-expires']}]"],
        ["max-expires", None, None, f"Longest registration, seconds [{DEFAULTS['max-expires']}]"],
        ["t1", None, None, f"SIP timer T1, seconds [{DEFAULTS['t1']}]"],
        ["t2", None, None, f"SIP timer T2, seconds [{DEFAULTS['t2']}]"],
        ["t4", None, None, f"SIP timer T4, seconds [{DEFAULTS['t4']}]"],
        [
            "digest-algorithms",
            None,
            None,
            f"Digest challenges offered, in order [{DEFAULTS['digest-algorithms']}]",
        ],
        ["rtp-ports", None, None, f"RTP/RTCP UDP port range LOW-HIGH [{DEFAULTS['rtp-ports']}]"],
        [
            "gateway",
            None,
            None,
            "SIP trunks for numbers, tried in order: comma-separated "
            "sip:[USER:PASSWORD@]HOST[:PORT][;register][;prefix=...] [none]",
        ],
        [
            "dns-servers",
            None,
            None,
            "DNS servers for gateway host names, ADDRESS[:PORT],... [/etc/resolv.conf]",
        ],
        ["min-se", None, None, f"Shortest session-timer interval, seconds [{DEFAULTS['min-se']}]"],
        ["media-address", None, None, "Address advertised in SDP [the SIP address]"],
        [
            "throttle-exempt",
            None,
            None,
            f"Networks never throttled or banned [{DEFAULTS['throttle-exempt']}]",
        ],
        ["log-level", None, None, f"Least severe log events written [{DEFAULTS['log-level']}]"],
    ]

    config: Config

    def postOptions(self) -> None:
        try:
            layers: list[dict[str, Any]] = []
            if self["config"]:
                layers.append(load_toml(Path(self["config"])))
            layers.append({name: self[name] for name in DEFAULTS})
            self.config = build_config(*layers)
        except ConfigError as exc:
            # One clear line, not twistd's whole usage text.
            raise SystemExit(f"twistd telephony: {exc}") from None

    def opt_version(self) -> None:
        """Print the version and exit."""
        print(f"telephony {__version__}")
        raise SystemExit(0)


class StoreService(service.Service):
    """Applies the schema migrations before anything listens; closes the pool at stop."""

    def __init__(self, database: Database, clock: IReactorTime) -> None:
        self.database = database
        self.clock = clock
        self.setName("store")

    def privilegedStartService(self) -> None:
        # Listeners bind in this phase too (StreamServerEndpointService), and they
        # come after us in the tree: the schema is ready before any request arrives.
        try:
            self.database.migrate_blocking()
        except SchemaError as exc:
            raise SystemExit(f"twistd telephony: {exc}") from None
        super().privilegedStartService()

    def stopService(self) -> Deferred[None]:
        """Close the pool once the writes queued by the services stopped before us
        (the CDRs of the calls they hung up) are committed."""
        super().stopService()
        d = self.database.drain(clock=self.clock)
        d.addBoth(lambda _: self.database.close())
        return d


class HTTPService(StreamServerEndpointService):
    """The HTTP listener; once it listens, the built-in apps learn the site's URL."""

    def __init__(self, endpoint: Any, site: Site, directory: Directory) -> None:
        super().__init__(endpoint, site)
        self._directory = directory
        self.base_url: str | None = None

    def startService(self) -> None:
        super().startService()
        if self._waitingForPort is not None:
            self._waitingForPort.addCallback(self._listening)

    def _listening(self, port: IListeningPort) -> IListeningPort:
        host = port.getHost()
        address = getattr(host, "host", "127.0.0.1")
        address = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(address, address)  # noqa: S104
        if ":" in address:
            address = f"[{address}]"
        self.base_url = f"http://{address}:{getattr(host, 'port', 80)}"
        log.info("REST API and status page on {url}/", url=self.base_url)
        d = self._directory.ensure_builtin_application(
            DIRECT_DIAL, lambda current: direct_dial_fields(self.base_url or "", current)
        )
        d.addErrback(lambda f: log.failure("Could not set up the Direct Dial application", f))
        return port


def _announce(credentials: Credentials, created: bool, data_dir: Path) -> None:
    if created:
        log.info(
            "Generated REST API credentials (stored in {path}): auth ID {auth_id}, "
            "auth token {auth_token}",
            path=str(data_dir / "credentials.json"),
            auth_id=credentials.auth_id,
            auth_token=credentials.auth_token,
        )
    else:
        log.info(
            "REST API auth ID {auth_id} (token in {path})",
            auth_id=credentials.auth_id,
            path=str(data_dir / "credentials.json"),
        )


def makeService(options: Options) -> service.MultiService:
    """Build the server's service tree from validated options."""
    from twisted.internet import reactor

    config = options.config
    filter_log_level(config.log_level)
    root = service.MultiService()
    try:
        config.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        credentials, created = load_or_create_credentials(
            config.data_dir, config.auth_id, config.auth_token
        )
    except (ConfigError, OSError) as exc:
        raise SystemExit(f"twistd telephony: data-dir: {exc}") from None
    _announce(credentials, created, config.data_dir)

    database = open_sqlite(config.data_dir / DATABASE_FILE, reactor)
    StoreService(database, reactor).setServiceParent(root)
    directory = Directory(database, config.domain, reactor)

    sip = SIPService(config, directory, database, reactor)
    sip.setServiceParent(root)
    trunks = _trunks(config, sip, reactor)
    trunks.setServiceParent(root)
    # Recording URLs need the site's address, known once HTTP listens (late-bound).
    calls = CallsService(
        config,
        sip,
        directory,
        database,
        reactor,
        credentials.auth_token,
        lambda: http.base_url,
        trunks,
    )
    calls.setServiceParent(root)

    api = DirectoryAPI(directory, config.domain, sip.registration_info)
    routes: list[Route] = api.routes() + CallsAPI(calls.manager, calls.cdrs).routes()
    routes += ConferenceAPI(calls.manager.conferences, calls.fetcher.notify).routes()
    routes += RecordingsAPI(calls.recordings, calls.manager.recordings.url_for, reactor).routes()
    site = build_site(
        directory=directory,
        auth_id=credentials.auth_id,
        check_auth=credentials.check,
        routes=routes,
        clock=reactor,
        started_at=reactor.seconds(),
        status_sections=(("SIP", sip.status), ("Trunks", trunks.status), ("Calls", calls.status)),
        live_calls=calls.manager.live,
        recordings_dir=config.data_dir / "recordings",
        live_conferences=calls.manager.conferences.live,
    )
    http = HTTPService(endpoints.serverFromString(reactor, config.http), site, directory)
    http.setName("http")
    http.setServiceParent(root)

    if config.manhole is not None:
        _add_manhole(root, config, directory, database, sip, calls, trunks)
    GCTuning().setServiceParent(root)
    return root


def _trunks(config: Config, sip: SIPService, reactor: Any) -> TrunksService:
    """The gateways' service, with a resolver for their host names (RFC 3263)."""
    listen = config.sip_listen
    host = f"[{listen.host}]" if ":" in listen.host else listen.host
    try:
        version: int = ipaddress.ip_address(listen.host).version
    except ValueError:
        version = 0  # listening on a name: addresses of either family
    family = {4: socket.AF_INET, 6: socket.AF_INET6}.get(version, socket.AF_UNSPEC)
    resolver = SipResolver(
        clock=reactor, servers=[(s.host, s.port) for s in config.dns_servers], family=family
    )
    return TrunksService(
        gateways=config.gateways,
        stack=sip.stack,
        guard=sip.guard,
        clock=reactor,
        locator=resolver,
        contact_host=f"{host}:{listen.port}",
    )


def _add_manhole(
    root: service.MultiService,
    config: Config,
    directory: Directory,
    database: Database,
    sip: SIPService,
    calls: CallsService,
    trunks: TrunksService,
) -> None:
    from telephony.manhole import load_or_create_host_key, manhole_service

    namespace = {
        "config": config,
        "directory": directory,
        "database": database,
        "services": root,
        "sip": sip,
        "registrar": sip.registrar,
        "location": sip.location,
        "calls": calls.manager,
        "conferences": calls.manager.conferences,
        "trunks": trunks,
        "media": calls.media,
    }
    manhole = manhole_service(
        config.manhole or "",
        namespace,
        host_key=load_or_create_host_key(config.data_dir),
        keys_file=config.manhole_keys,
        passwd_file=config.manhole_passwd,
    )
    manhole.setName("manhole")
    manhole.setServiceParent(root)
    log.info("Manhole (SSH) on {endpoint}", endpoint=config.manhole)
