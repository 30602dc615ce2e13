"""baresip 1.0 as a real softphone in the interop tests, driven over its ctrl_tcp module.

Each :class:`Phone` is its own ``baresip -f DIR`` process with a configuration
generated into the test's directory: loopback only (``net_interface 127.0.0.1``,
else baresip advertises the machine's first interface in its SDP), no sound card
(``ausine`` plays a tone as the microphone, ``aubridge`` is a player that nobody
listens to), G.711 alone, no STUN/ICE/TURN, and ``ctrl_tcp`` on a free port of
127.0.0.1.  baresip 1.0 sends DTMF only as RFC 4733 telephone-events (it offers
``telephone-event/8000`` in its SDP) and reports each received digit as a
``CALL_DTMF_START`` event whose ``param`` is the digit, then ``CALL_DTMF_END``.

**ctrl_tcp** (baresip's ``modules/ctrl_tcp``) speaks JSON in netstrings
(``LEN:JSON,``) over one TCP connection: a command is ``{"command": ..., "params":
..., "token": ...}`` and gets ``{"response": true, "ok": ..., "data": ...,
"token": ...}``; events arrive unasked as ``{"event": true, "type": ..., "param":
..., ...}``, but only while a client is connected, and are dropped otherwise.

That last point is why the account is not in an ``accounts`` file: baresip's
account module loads the file's accounts, and sends their first REGISTER, before
ctrl_tcp is even loaded, so the REGISTER_OK (or REGISTER_FAIL) of such an
account always goes to nobody.  The phone is therefore started without the
account module; once the control connection is up, :meth:`Phone.register` hands
baresip the very line an ``accounts`` file would hold
(``<sip:user@domain>;auth_pass=...;outbound=...``, :meth:`PhoneAccount.line`)
with the ``uanew`` command, which registers it at once, and the outcome's event
cannot be missed.

Nothing here waits without a bound: every read has a deadline, a phone runs with
``-t`` (baresip quits by itself) and :func:`running_phone` always stops it.  Its
log (stdout and stderr, with SIP traces) stays in the test's directory and
:meth:`Phone.report` puts it in assertion messages.
"""

from __future__ import annotations

import itertools
import json
import re
import select
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs

from tests.serverproc import free_port, free_sip_port

__all__ = (
    "BaresipError",
    "Event",
    "NetstringReader",
    "Phone",
    "PhoneAccount",
    "Response",
    "baresip_binary",
    "netstring",
    "phone_config",
    "running_phone",
)

#: Seconds a phone may take to start and answer its first command.
START_TIMEOUT = 15.0
#: Default bound, in seconds, of every wait for a response or an event.
WAIT = 10.0
#: Seconds baresip lives at most (``-t``): an orphan never outlives the test run.
LIFETIME = 180
#: Seconds a phone gets to unregister and exit after SIGTERM before it is killed.
STOP_TIMEOUT = 5.0
#: Longest netstring accepted from baresip, in bytes.
MAX_MESSAGE = 1 << 20
#: ctrl_tcp builds "command params" in a 256-byte buffer and truncates the rest.
_MAX_COMMAND = 255

_tokens = itertools.count(1)
#: ANSI colour sequences (baresip colours warnings and SIP traces).
_COLOUR = re.compile(r"\x1b\[[0-9;]*m")


class BaresipError(AssertionError):
    """baresip did not do what a test waited for (the message carries its report)."""


def baresip_binary() -> str:
    """The ``baresip`` binary on PATH (Debian: ``baresip-core``)."""
    path = shutil.which("baresip")
    if path is None:
        raise BaresipError("baresip is required for these interop tests (Debian: baresip-core)")
    return path


# -- netstrings (sans-IO) ----------------------------------------------------------------


def netstring(payload: bytes) -> bytes:
    """*payload* framed as a netstring: ``LEN:payload,``."""
    return b"%d:%s," % (len(payload), payload)


class NetstringReader:
    """Splits a byte stream into netstring payloads, however it is chunked."""

    def __init__(self, limit: int = MAX_MESSAGE) -> None:
        self._buffer = b""
        self._limit = limit

    def feed(self, data: bytes) -> list[bytes]:
        """Add *data*; returns the payloads it completed, in order.

        :raises BaresipError: if the stream is not netstrings (or one is too long).
        """
        self._buffer += data
        payloads: list[bytes] = []
        while True:
            head, colon, rest = self._buffer.partition(b":")
            # The length: digits only, at most as many as the limit has.
            well_formed = head.isdigit() or not (head or colon)
            if not well_formed or len(head) > len(str(self._limit)):
                raise BaresipError(f"not a netstring: {self._buffer[:80]!r}")
            if not colon:
                return payloads
            size = int(head)
            if size > self._limit:
                raise BaresipError(f"a netstring of {size} bytes, over {self._limit}")
            if len(rest) < size + 1:
                return payloads
            if rest[size : size + 1] != b",":
                raise BaresipError(f"netstring without its comma: {self._buffer[:80]!r}")
            payloads.append(rest[:size])
            self._buffer = rest[size + 1 :]


# -- what baresip says -------------------------------------------------------------------


@attrs.frozen
class Event:
    """One ctrl_tcp event, e.g. ``REGISTER_OK`` or ``CALL_DTMF_START``.

    :ivar type: the event's ``type``.
    :ivar param: its ``param`` (the digit of a DTMF event, the reason of a close).
    :ivar fields: the whole JSON object as baresip sent it.
    :ivar at: ``time.monotonic()`` when the test read it, seconds.
    """

    type: str
    param: str
    fields: Mapping[str, Any]
    at: float

    @property
    def call_id(self) -> str | None:
        """baresip's own ID of the call the event is about (``id``), if any."""
        value = self.fields.get("id")
        return str(value) if value is not None else None


@attrs.frozen
class Response:
    """ctrl_tcp's answer to one command: whether it succeeded, and its text."""

    ok: bool
    data: str


@attrs.frozen
class PhoneAccount:
    """A SIP account as a baresip ``accounts`` line, for an endpoint of the server.

    :ivar username: the endpoint's SIP username.
    :ivar password: its digest password (sent as ``auth_pass``).
    :ivar domain: the server's SIP domain (the AOR's host).
    :ivar proxy: the server's SIP address, 127.0.0.1 and its port (``outbound``).
    :ivar regint: the registration interval asked for, seconds.
    """

    username: str
    password: str
    domain: str
    proxy: tuple[str, int]
    regint: int = 600

    @property
    def aor(self) -> str:
        """The address of record, ``sip:user@domain``."""
        return f"sip:{self.username}@{self.domain}"

    def line(self) -> str:
        """The account as one line of baresip's ``accounts`` file (and ``uanew``)."""
        host, port = self.proxy
        return (
            f"<{self.aor}>;auth_pass={self.password}"
            f';outbound="sip:{host}:{port};transport=udp"'
            f";regint={self.regint};answermode=manual;audio_codecs=PCMU,PCMA"
        )


def phone_config(sip_port: int, control_port: int) -> str:
    """The ``config`` file of one phone: only the modules a headless G.711 phone needs.

    :param sip_port: where its SIP listens on 127.0.0.1 (UDP and TCP).
    :param control_port: where ctrl_tcp listens on 127.0.0.1.
    """
    return f"""\
# A headless test phone; generated by tests/interop/baresip.py.
poll_method		epoll
# Only loopback: without this baresip puts the first interface's address in its SDP.
net_interface		127.0.0.1
sip_listen		127.0.0.1:{sip_port}
call_local_timeout	30
call_max_calls		2
# No sound card: a 440 Hz sine is the microphone (ausine makes only 48 kHz stereo;
# baresip resamples), aubridge plays to nobody.
audio_source		ausine,440
ausrc_srate		48000
ausrc_channels		2
audio_player		aubridge,nowhere
audio_alert		aubridge,nowhere
# RTP above the kernel's ephemeral ports (where free_port() finds the SIP and
# control ports) and apart from the server's default range (16384-32767).
rtp_ports		61000-64999
rtcp_mux		no
jitter_buffer_delay	1-5

module_path		/usr/lib/baresip/modules
module			g711.so
module			ausine.so
module			aubridge.so
# commands (dial, accept, hangup, sndcode, uanew, reginfo) come from menu.
module_app		menu.so
module_app		ctrl_tcp.so
ctrl_tcp_listen		127.0.0.1:{control_port}
"""


# -- one phone ---------------------------------------------------------------------------


class Phone:
    """A running baresip and its control connection.

    Messages are read only while a method waits (no thread): responses are matched
    to commands by token, events are appended to :attr:`events` in arrival order.
    """

    def __init__(
        self,
        name: str,
        directory: Path,
        process: subprocess.Popen[bytes],
        control: socket.socket,
        sip_port: int,
    ) -> None:
        self.name = name
        self.directory = directory
        self.process = process
        self.control = control
        self.sip_port = sip_port
        #: Every event read so far, oldest first.
        self.events: list[Event] = []
        self._responses: dict[str, Response] = {}
        self._reader = NetstringReader()

    @property
    def log_path(self) -> Path:
        """baresip's stdout and stderr (``-s``: with every SIP message)."""
        return self.directory / "baresip.log"

    def log(self) -> str:
        """Its log so far, without the colours baresip writes even to a file."""
        if not self.log_path.exists():
            return ""
        return _COLOUR.sub("", self.log_path.read_text(errors="replace"))

    def report(self) -> str:
        """Its events and the end of its log, for assertion messages."""
        events = "\n".join(f"  {e.type} {e.param!r}" for e in self.events) or "  (none)"
        return (
            f"== baresip {self.name} (SIP 127.0.0.1:{self.sip_port}, "
            f"rc={self.process.returncode})\n-- events:\n{events}\n"
            f"-- log ({self.log_path}):\n{self.log()[-12000:]}"
        )

    # -- reading -------------------------------------------------------------------

    def _read(self, deadline: float) -> None:
        """Read what arrives before *deadline* (at least one chunk if any comes)."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        readable, _, _ = select.select([self.control], [], [], min(remaining, 0.1))
        if not readable:
            if self.process.poll() is not None:
                raise BaresipError(f"baresip {self.name} exited\n{self.report()}")
            return
        data = self.control.recv(65536)
        if not data:
            raise BaresipError(f"baresip {self.name} closed ctrl_tcp\n{self.report()}")
        for payload in self._reader.feed(data):
            self._dispatch(payload)

    def _dispatch(self, payload: bytes) -> None:
        message = json.loads(payload)
        if not isinstance(message, dict):
            raise BaresipError(f"ctrl_tcp sent {payload!r}")
        if message.get("response") is True:
            token = str(message.get("token", ""))
            self._responses[token] = Response(bool(message.get("ok")), str(message["data"]))
        elif message.get("event") in (True, "true"):
            self.events.append(
                Event(
                    str(message.get("type", "")),
                    str(message.get("param", "")),
                    message,
                    time.monotonic(),
                )
            )
        else:
            raise BaresipError(f"neither a response nor an event: {payload!r}")

    # -- commands ------------------------------------------------------------------

    def command(self, command: str, params: str | None = None, timeout: float = WAIT) -> Response:
        """Run one baresip command (``dial``, ``accept``...) and return its response.

        :raises BaresipError: if no response comes within *timeout* seconds.
        """
        text = command if params is None else f"{command} {params}"
        if len(text.encode()) > _MAX_COMMAND:
            raise ValueError(f"ctrl_tcp truncates commands over {_MAX_COMMAND} bytes: {text!r}")
        token = f"{self.name}-{next(_tokens)}"
        message: dict[str, str] = {"command": command, "token": token}
        if params is not None:
            message["params"] = params
        self.control.sendall(netstring(json.dumps(message).encode()))
        deadline = time.monotonic() + timeout
        while token not in self._responses:
            if time.monotonic() >= deadline:
                raise BaresipError(
                    f"no response to {text!r} in {timeout} s from {self.name}\n{self.report()}"
                )
            self._read(deadline)
        return self._responses.pop(token)

    def ok(self, command: str, params: str | None = None, timeout: float = WAIT) -> str:
        """:meth:`command`, asserting that it succeeded; returns its data."""
        response = self.command(command, params, timeout)
        if not response.ok:
            text = command if params is None else f"{command} {params}"
            raise BaresipError(f"{text!r} failed: {response.data!r}\n{self.report()}")
        return response.data

    def register(self, account: PhoneAccount, timeout: float = WAIT) -> Event:
        """Add *account* (``uanew``) and wait for its REGISTER_OK or REGISTER_FAIL.

        :returns: that event; the caller asserts which one it wanted.
        """
        self.ok("uanew", account.line())
        return self.wait_event("REGISTER_OK", "REGISTER_FAIL", timeout=timeout)

    def dial(self, uri: str) -> None:
        """Call *uri* (through the account's outbound proxy, the server)."""
        self.ok("dial", uri)

    def accept(self) -> None:
        """Answer the incoming call."""
        self.ok("accept")

    def hangup(self) -> None:
        """Hang up the current call."""
        self.ok("hangup")

    def send_digits(self, digits: str) -> None:
        """Send *digits* on the current call (baresip 1.0: RFC 4733 events, in order)."""
        self.ok("sndcode", digits)

    # -- events --------------------------------------------------------------------

    def events_of(self, *types: str) -> list[Event]:
        """The events read so far whose type is one of *types*."""
        return [e for e in self.events if e.type in types]

    def wait_event(self, *types: str, count: int = 1, timeout: float = WAIT) -> Event:
        """Wait until *count* events of *types* have arrived; returns the last of them.

        :raises BaresipError: after *timeout* seconds without them.
        """
        deadline = time.monotonic() + timeout
        while len(seen := self.events_of(*types)) < count:
            if time.monotonic() >= deadline:
                raise BaresipError(
                    f"{self.name}: {count} x {'/'.join(types)} not seen in {timeout} s\n"
                    f"{self.report()}"
                )
            self._read(deadline)
        return seen[count - 1]

    def settle(self, seconds: float) -> None:
        """Keep reading for *seconds* (to catch events that should not come)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._read(deadline)

    def digits(self) -> str:
        """The DTMF digits received so far, in order (from ``CALL_DTMF_START``)."""
        return "".join(e.param for e in self.events_of("CALL_DTMF_START"))

    def wait_digits(self, count: int, timeout: float = WAIT) -> str:
        """Wait until *count* digits have ended (``CALL_DTMF_END``); :meth:`digits`."""
        self.wait_event("CALL_DTMF_END", count=count, timeout=timeout)
        return self.digits()

    # -- stopping ------------------------------------------------------------------

    def stop(self) -> int:
        """SIGTERM (baresip unregisters and exits), killed if it overstays; its code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.control.close()
        return self.process.returncode


def _connect(
    process: subprocess.Popen[bytes], port: int, log: Path, deadline: float
) -> socket.socket:
    """Connect to ctrl_tcp on 127.0.0.1:*port* once it listens, before *deadline*.

    baresip carries on without ctrl_tcp when that cannot listen (the port was
    taken meanwhile), so its log is watched for that too.
    """
    while True:
        if process.poll() is not None:
            raise BaresipError(f"baresip exited with {process.returncode} while starting")
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=1.0)
        except OSError:
            if "ctrl_tcp: failed to listen" in log.read_text(errors="replace"):
                raise BaresipError(f"ctrl_tcp could not listen on 127.0.0.1:{port}") from None
            if time.monotonic() >= deadline:
                raise BaresipError(f"ctrl_tcp never listened on 127.0.0.1:{port}") from None
            time.sleep(0.02)


@contextmanager
def running_phone(directory: Path, name: str, extra_args: Sequence[str] = ()) -> Iterator[Phone]:
    """Start a phone with its own configuration in ``directory/name`` and yield it,
    connected to ctrl_tcp and answering commands; stopped whatever happens, its
    report printed if the block fails (pytest shows that output with the failure).

    The phone has no account yet: :meth:`Phone.register` adds one.
    """
    home = directory / name
    home.mkdir(parents=True)
    sip_port, control_port = free_sip_port(), free_port()
    (home / "config").write_text(phone_config(sip_port, control_port))
    log_path = home / "baresip.log"
    log = log_path.open("wb")
    args = [baresip_binary(), "-f", str(home), "-s", "-t", str(LIFETIME), *extra_args]
    process = subprocess.Popen(
        args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=home
    )
    log.close()
    phone: Phone | None = None
    try:
        deadline = time.monotonic() + START_TIMEOUT
        try:
            control = _connect(process, control_port, log_path, deadline)
        except BaresipError as exc:
            raise BaresipError(f"{exc}\n{log_path.read_text(errors='replace')}") from None
        phone = Phone(name, home, process, control, sip_port)
        # Whoever listens there must answer as ctrl_tcp does (another program might
        # have taken the port between free_port() and baresip's bind).
        phone.ok("reginfo", timeout=max(1.0, deadline - time.monotonic()))
        try:
            yield phone
        except BaseException:
            # pytest shows what a failed test printed: this phone's side of it.
            print(phone.report())
            raise
    finally:
        if phone is not None:
            phone.stop()
        elif process.poll() is None:
            process.kill()
            process.wait()
