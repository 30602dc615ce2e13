"""A real softphone, baresip 1.0, against ``twistd -n telephony`` (issue 11).

baresip 1.0 gives up on a REGISTER with "Function not implemented" as soon as any
challenge of the 401 is SHA-256, so the server now challenges with MD5 alone by
default.  These tests hold both halves of that: a stock baresip registers, and
calls another one through the server with DTMF both ways, against a server started
with no digest option at all; and against ``--digest-algorithms SHA-256,MD5`` the
same phone fails to register, which is why SHA-256 is opt-in (and shows that the
first test can fail).

One server with the embedded defaults serves the module; the control starts its
own.  Each phone is a ``baresip`` process driven over ctrl_tcp
(:mod:`tests.interop.baresip`); its configuration and log are in the test's
directory, and its events and log are in every failure message.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.restapi import Endpoint, RestClient
from tests.serverproc import Server, running_server
from tests.sipp import sendable_password

from .baresip import Phone, PhoneAccount, running_phone

pytestmark = pytest.mark.interop

#: The server's SIP domain when started without ``--domain`` (its default).
DOMAIN = "127.0.0.1"
#: Seconds the server may take to commit a finished call's CDRs (group commit).
CDR_TIMEOUT = 10.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``twistd -n telephony`` with its embedded defaults: no digest option."""
    with running_server(tmp_path_factory.mktemp("baresip") / "var") as s:
        yield s


@pytest.fixture(scope="module")
def rest(server: Server) -> RestClient:
    """The module server's REST API, where endpoints are made and checked."""
    return RestClient(server)


def new_endpoint(rest: RestClient, name: str) -> Endpoint:
    """An endpoint without an application, with a password baresip can send."""
    return rest.create_endpoint(name, sendable_password(), alias=name)


def account(server: Server, endpoint: Endpoint) -> PhoneAccount:
    """*endpoint*'s account for a phone, the server as its outbound proxy."""
    return PhoneAccount(
        endpoint.username, endpoint.password, DOMAIN, ("127.0.0.1", server.sip_port)
    )


@contextmanager
def registered_phone(
    directory: Path, name: str, server: Server, endpoint: Endpoint
) -> Iterator[Phone]:
    """A phone that has registered *endpoint* (REGISTER_OK), as a context manager."""
    with running_phone(directory, name) as phone:
        event = phone.register(account(server, endpoint))
        assert event.type == "REGISTER_OK", phone.report()
        yield phone


def wait_for_cdrs(rest: RestClient, caller: str, count: int) -> list[dict[str, Any]]:
    """The CDRs of calls from *caller*, once there are *count* of them (bounded)."""
    deadline = time.monotonic() + CDR_TIMEOUT
    while True:
        records = [
            r for r in rest.call("GET", "/Call/?limit=20")["objects"] if r["from_number"] == caller
        ]
        if len(records) >= count or time.monotonic() >= deadline:
            return records
        time.sleep(0.1)


# -- registration ------------------------------------------------------------------------


def test_baresip_registers_against_the_default_server(
    server: Server, rest: RestClient, tmp_path: Path
) -> None:
    """Digest with the embedded defaults (MD5 alone): baresip's REGISTER_OK, the
    binding the REST API shows, and the unregistering when the phone stops."""
    endpoint = new_endpoint(rest, "softphone")
    phone_account = account(server, endpoint)

    with running_phone(tmp_path, "softphone") as phone:
        event = phone.register(phone_account)

        assert event.type == "REGISTER_OK", phone.report()
        assert event.param == "200 OK", phone.report()
        assert event.fields["accountaor"] == phone_account.aor
        shown = rest.endpoint(endpoint.endpoint_id)
        assert shown["sip_registered"] == "true", (shown, phone.report())
        # baresip's Contact is sip:USER-<instance>@127.0.0.1:PORT.
        assert shown["sip_contact"].startswith(f"sip:{endpoint.username}"), shown
        assert shown["sip_contact"].endswith(f"@127.0.0.1:{phone.sip_port}"), shown
        assert shown["sip_user_agent"].startswith("baresip v1.0"), shown

    # Stopped, the phone unregistered (REGISTER with Expires: 0, digest again).
    shown = rest.endpoint(endpoint.endpoint_id)
    assert shown["sip_registered"] == "false", (shown, phone.report())


def test_baresip_cannot_register_when_sha256_is_offered(tmp_path: Path) -> None:
    """The control: the same phone, a server offering SHA-256 before MD5 (issue 11)."""
    args = ["--digest-algorithms", "SHA-256,MD5"]
    with running_server(tmp_path / "var", args) as sha_server:
        rest = RestClient(sha_server)
        endpoint = new_endpoint(rest, "sha")
        with running_phone(tmp_path, "sha") as phone:
            event = phone.register(account(sha_server, endpoint))

            assert event.type == "REGISTER_FAIL", (
                "baresip 1.0 registered although a SHA-256 challenge came first: "
                "MD5 alone may no longer need to be the default\n" + phone.report()
            )
            # baresip's own words for a challenge it cannot answer (ENOSYS).
            assert event.param == "Function not implemented", phone.report()
            assert "algorithm=SHA-256" in phone.log()
            assert rest.endpoint(endpoint.endpoint_id)["sip_registered"] == "false"


# -- a call between two phones -----------------------------------------------------------


def test_two_baresip_phones_call_and_send_digits_both_ways(
    server: Server, rest: RestClient, tmp_path: Path
) -> None:
    """Alice dials Bob's SIP URI; the server bridges the legs and relays the RFC 4733
    events of each side to the other; Alice hangs up; the CDRs say completed."""
    alice_endpoint = new_endpoint(rest, "alice")
    bob_endpoint = new_endpoint(rest, "bob")
    alice_aor = account(server, alice_endpoint).aor
    bob_uri = f"sip:{bob_endpoint.username}@{DOMAIN}"

    with (
        registered_phone(tmp_path, "alice", server, alice_endpoint) as alice,
        registered_phone(tmp_path, "bob", server, bob_endpoint) as bob,
    ):
        alice.dial(bob_uri)
        ringing = bob.wait_event("CALL_INCOMING")
        assert ringing.param == alice_aor, bob.report()
        bob.accept()
        established = alice.wait_event("CALL_ESTABLISHED")
        assert established.param == bob_uri, alice.report()
        bob.wait_event("CALL_ESTABLISHED")
        # Two dialogs, not one: the server is a back-to-back user agent.
        assert established.call_id != ringing.call_id

        alice.send_digits("123#")
        assert bob.wait_digits(4) == "123#", bob.report()
        assert alice.digits() == "", alice.report()  # nothing came back to the sender
        bob.send_digits("9*0")
        assert alice.wait_digits(3) == "9*0", alice.report()

        alice.hangup()
        alice.wait_event("CALL_CLOSED")
        closed = bob.wait_event("CALL_CLOSED")
        # baresip's reason when the other side's BYE ended the call.
        assert closed.param == "Connection reset by peer", bob.report()
        # Exactly those digits, each on its own call, and no others since.
        assert bob.digits() == "123#", bob.report()
        assert alice.digits() == "9*0", alice.report()
        assert {e.call_id for e in bob.events_of("CALL_DTMF_START")} == {ringing.call_id}
        assert {e.call_id for e in alice.events_of("CALL_DTMF_START")} == {established.call_id}

    records = wait_for_cdrs(rest, alice_endpoint.username, 2)
    legs = {r["call_direction"]: r for r in records}
    assert len(records) == 2, records
    assert set(legs) == {"inbound", "outbound"}, records
    inbound, outbound = legs["inbound"], legs["outbound"]
    for leg in (inbound, outbound):
        assert leg["call_status"] == "completed", records
        assert leg["hangup_cause_name"] == "Normal Hangup", records
        assert leg["to_number"] == bob_uri, records
        assert leg["answer_time"], records
        assert leg["bill_duration"] >= 1, records  # answered, then 1.5 s of digits
    assert inbound["hangup_source"] == "Caller", records
    assert outbound["parent_call_uuid"] == inbound["call_uuid"], records
