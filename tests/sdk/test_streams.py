"""The stream server (issue 23, docs/design.md §14.4-14.5) end to end: `cloudphone serve` with
simulated phones, tickets from BatchGetAcpConnectionTicket through the official SDK, and viewers
speaking the WebSocket protocol at `/streams/<InstanceId>` with websocket-client, as a program
would (the console's page speaks the same).

- No stream without a valid ticket: no hello, a forged, expired, other phone's or other
  account's ticket, and a stopped phone, each closed with its code.
- A viewer gets `hello`, then frames with their 24-byte header at about the stream's rate;
  SessionStatus is `connect` while a socket is open and `disConnect` once it closed.
- Input lands on the phone (read back with `dumpsys input`) and the frames say when they show it.
- Two viewers: the first controls, the second watches (its input gets `NotController`), control
  moves.
- DisconnectAndroidInstance ends the sessions within 2 s and their tickets no longer open.
- A stalled viewer (one that never reads) leaves another's frame rate as it was and the
  server's memory bounded; with a short idle timeout it is dropped, while a reading viewer
  outlives that timeout.
- A viewer's connection keeps its slot (busy, never shed) while its socket lives.
- A phone that stops closes its viewers with 4001."""

import base64
import json
import socket
import struct
import threading
import time

import pytest
import websocket
from alibabacloud_eds_aic20230930 import models

from conftest import Server, call, create_group, describe_instances, wait_for

HEADER = struct.Struct(">BBHHHIIII")


@pytest.fixture(scope="module")
def srv(workdir):
    s = Server(workdir / "streams", sim_delay_ms=10).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def a(srv):
    return srv.client()


@pytest.fixture(scope="module")
def b(srv):
    """Another account on the same server."""
    return srv.client(key=srv.create_key("acct-streams-b"))


def ticket(client, phone, user=None):
    (m,) = client.batch_get_acp_connection_ticket(models.BatchGetAcpConnectionTicketRequest(
        instance_ids=[phone], end_user_id=user)).body.instance_connection_models
    assert m.task_status == "FINISHED", m.to_map()
    return m.ticket


def session_status(client, phone):
    return describe_instances(client, [phone])[phone].session_status


def sessions(client, phone):
    return {s["SessionId"]: s for s in call(client, "DescribeStreamSessions", {"InstanceIds.1": phone})["Sessions"]}


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


class Viewer:
    """One WebSocket to a phone's stream."""

    def __init__(self, srv, phone, tkt=None, timeout=10, sockopt=(), want=None):
        self.ws = websocket.create_connection(f"ws://{srv.endpoint}/streams/{phone}", timeout=timeout,
                                              sockopt=sockopt)
        if tkt is not None:
            self.send(t="hello", ticket=tkt, **({"want": want} if want else {}))

    def send(self, **m):
        self.ws.send(json.dumps(m))

    def next(self):
        """("text", dict) | ("frame", header, payload) | ("close", code, reason)."""
        while True:
            try:
                op, data = self.ws.recv_data(control_frame=True)
            except websocket.WebSocketConnectionClosedException:
                return ("close", 1006, "")
            if op == websocket.ABNF.OPCODE_TEXT:
                return ("text", json.loads(data))
            if op == websocket.ABNF.OPCODE_BINARY:
                return ("frame", HEADER.unpack(data[:24]), data[24:])
            if op == websocket.ABNF.OPCODE_CLOSE:
                if len(data) < 2:
                    return ("close", 1005, "")
                return ("close", struct.unpack(">H", data[:2])[0], data[2:].decode())

    def messages(self, what, within=20):
        """Messages until the caller returns; fails after `within` seconds of others (frames keep
        coming to an admitted viewer, so a wait for what never comes must end by time)."""
        deadline = time.time() + within
        while True:
            assert time.time() < deadline, f"no {what} within {within} s"
            yield self.next()

    def text_of(self, t):
        for got in self.messages(f"{t!r} message"):
            if got[0] == "text" and got[1]["t"] == t:
                return got[1]
            assert got[0] != "close", f"closed {got[1:]} waiting for {t}"

    def frame(self):
        for got in self.messages("frame"):
            if got[0] == "frame":
                return got[1], got[2]
            assert got[0] != "close", f"closed {got[1:]} waiting for a frame"

    def closed(self):
        """The close code and reason; the `bye` before it must say the same reason."""
        bye = None
        for got in self.messages("close"):
            if got[0] == "text" and got[1]["t"] == "bye":
                bye = got[1]["reason"]
            elif got[0] == "close":
                if got[1] >= 4000:
                    assert bye == got[2], (bye, got)
                return got[1], got[2]

    def close(self):
        self.ws.close()


def opened(srv, client, phone, user=None):
    v = Viewer(srv, phone, ticket(client, phone, user))
    return v, v.text_of("hello")


def with_claims(tkt, **change):
    """The ticket with its claims changed and its tag kept: what a forger can make."""
    _, body, tag = tkt.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims.update(change)
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"cpt1.{body}.{tag}"


# --- refusals ---------------------------------------------------------------------------------

def test_no_stream_without_a_valid_ticket(srv, a, b):
    _, (p, q, stopped) = create_group(a, 3, name="streams-refusals")
    _, (theirs,) = create_group(b, 1, name="streams-theirs")
    started = time.time()
    v = Viewer(srv, p)
    assert v.closed() == (4400, "HelloExpected")
    assert 4.5 < time.time() - started < 8, "the hello is awaited 5 s"
    v = Viewer(srv, p)
    v.send(t="ping", ts=1)
    assert v.closed() == (4400, "HelloExpected")
    good = ticket(a, p)
    # A hello asking for what the server cannot send: refused, not answered with something else.
    assert Viewer(srv, p, good, want="vp9").closed() == (4400, "HelloExpected")

    for tkt, code, reason in [
        ("not a ticket", 4401, "TicketInvalid"),
        (with_claims(good, i=q), 4401, "TicketInvalid"),
        (with_claims(good, exp=int(time.time() * 1000) + 3_600_000), 4401, "TicketInvalid"),
        (ticket(a, q), 4403, "TicketNotForThisPhone"),
        (ticket(b, theirs), 4403, "TicketNotForThisPhone"),
    ]:
        assert Viewer(srv, p, tkt).closed() == (code, reason), reason
    # Another account's ticket for its own phone opens that phone only.
    theirs_viewer, hello = opened(srv, b, theirs)
    assert hello["role"] == "control"
    theirs_viewer.close()

    t = ticket(a, stopped)
    a.stop_android_instance(models.StopAndroidInstanceRequest(android_instance_ids=[stopped]))
    wait_for(lambda: describe_instances(a, [stopped])[stopped].android_instance_status == "STOPPED",
             what="the phone stopped")
    assert Viewer(srv, stopped, t).closed() == (4409, "InstanceNotRunning")
    assert all(session_status(a, x) == "disConnect" for x in (p, q, stopped))


def test_an_expired_ticket_is_refused(workdir):
    s = Server(workdir / "streams-ttl", sim_delay_ms=10, extra_args=["--stream-ticket-ttl-secs", "1"]).start()
    try:
        c = s.client()
        _, (p,) = create_group(c, 1, name="streams-ttl")
        t = ticket(c, p)
        time.sleep(1.2)
        assert Viewer(s, p, t).closed() == (4402, "TicketExpired")
    finally:
        s.stop()


# --- a viewer ------------------------------------------------------------------------------------

def test_a_viewer_gets_frames_and_the_phone_shows_connect(srv, a):
    _, (p,) = create_group(a, 1, name="streams-frames")
    assert session_status(a, p) == "disConnect"
    v, hello = opened(srv, a, p, user="alice")
    assert hello["session"].startswith("ss-") and hello["role"] == "control" and hello["codec"] == "png"
    assert (hello["width"], hello["height"], hello["device"]) == (720, 1280, [720, 1280])
    assert v.text_of("viewers")["n"] == 1
    assert session_status(a, p) == "connect"
    (s,) = sessions(a, p).values()
    assert (s["SessionId"], s["EndUserId"], s["Role"], s["Status"]) == (hello["session"], "alice", "Control", "Live")

    header, png = v.frame()
    assert header[0] == 1 and (header[2], header[3]) == (720, 1280)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    started, first, payloads = time.time(), header[5], set()
    while time.time() - started < 2:
        header, png = v.frame()
        payloads.add(png)
    fps = (header[5] - first) / (time.time() - started)
    assert fps >= 15, f"{fps:.1f} frames a second"
    assert len(payloads) > 10, "consecutive frames differ"
    print(f"\nstream: {fps:.1f} frames/s, {len(png)} bytes a frame")

    v.close()
    wait_for(lambda: session_status(a, p) == "disConnect", timeout=5, what="disConnect after the close")
    ended = sessions(a, p)[hello["session"]]
    assert (ended["Status"], ended["EndReason"]) == ("Ended", "Closed")


def test_input_lands_and_frames_say_when_they_show_it(srv, a):
    _, (p,) = create_group(a, 1, name="streams-input")
    v, hello = opened(srv, a, p)
    tag = hello["tag"]
    v.send(t="touch", seq=1, a="down", x=300, y=700, w=720, h=1280)
    v.send(t="touch", seq=2, a="up", x=300, y=700, w=720, h=1280)
    v.send(t="text", seq=3, text="hi")
    v.send(t="key", seq=4, key="back")
    acks, shown = {}, False
    while len(acks) < 4 or not shown:
        got = v.next()
        if got[0] == "text" and got[1]["t"] == "ack":
            acks[got[1]["seq"]] = got[1]["ok"]
        elif got[0] == "frame":
            shown = got[1][6] == tag and got[1][7] >= 4
        assert got[0] != "close", got
    assert acks == {1: True, 2: True, 3: True, 4: True}
    out = a.run_sync_command(models.RunSyncCommandRequest(
        instance_ids=[p], command_content="dumpsys input", wait_time=3000)).body.data[0].output
    lines = out.splitlines()
    recent = lines[lines.index("Recent input (newest last):") + 1:]
    assert recent[-3:] == ["  tap 300 700", "  text hi", "  keyevent 4"], out
    v.close()


def test_two_viewers_one_controls_and_control_moves(srv, a):
    _, (p,) = create_group(a, 1, name="streams-control")
    first, h1 = opened(srv, a, p)
    second, h2 = opened(srv, a, p)
    assert (h1["role"], h2["role"]) == ("control", "view")
    second.send(t="touch", seq=1, a="down", x=10, y=10, w=720, h=1280)
    e = second.text_of("error")
    assert (e["seq"], e["code"]) == (1, "NotController")
    second.send(t="control", take=True)
    assert second.text_of("role")["role"] == "control"
    r = first.text_of("role")
    assert (r["role"], r["controller"]) == ("view", h2["session"])
    first.send(t="key", seq=5, key="home")
    assert first.text_of("error")["code"] == "NotController"
    second.send(t="key", seq=2, key="home")
    assert second.text_of("ack") == {"t": "ack", "seq": 2, "ok": True}
    roles = {s["SessionId"]: s["Role"] for s in sessions(a, p).values()}
    assert roles == {h1["session"]: "View", h2["session"]: "Control"}
    first.close()
    second.close()


def test_disconnect_ends_sessions_within_two_seconds_and_their_tickets(srv, a):
    _, (p,) = create_group(a, 1, name="streams-disconnect")
    t_alice, t_bob = ticket(a, p, "alice"), ticket(a, p, "bob")
    alice = Viewer(srv, p, t_alice)
    alice.text_of("hello")
    bob = Viewer(srv, p, t_bob)
    bob.text_of("hello")
    # One end user: only alice's session ends, and only her tickets stop opening.
    started = time.time()
    a.disconnect_android_instance(models.DisconnectAndroidInstanceRequest(instance_ids=[p], end_user_id="alice"))
    assert alice.closed() == (4000, "Disconnected")
    assert time.time() - started < 2
    assert Viewer(srv, p, t_alice).closed() == (4410, "TicketRevoked")
    bob.frame()
    assert session_status(a, p) == "connect"
    # The whole phone.
    started = time.time()
    a.disconnect_android_instance(models.DisconnectAndroidInstanceRequest(instance_ids=[p]))
    assert bob.closed() == (4000, "Disconnected")
    assert time.time() - started < 2
    assert Viewer(srv, p, t_bob).closed() == (4410, "TicketRevoked")
    assert session_status(a, p) == "disConnect"
    fresh, hello = opened(srv, a, p, "bob")
    assert hello["role"] == "control"
    fresh.close()


def test_a_phone_that_stops_closes_its_viewers(srv, a):
    _, (p,) = create_group(a, 1, name="streams-stop")
    v, _ = opened(srv, a, p)
    v.frame()
    a.stop_android_instance(models.StopAndroidInstanceRequest(android_instance_ids=[p]))
    assert v.closed() == (4001, "PhoneStopped")
    wait_for(lambda: session_status(a, p) == "disConnect", timeout=5, what="disConnect")


# --- backpressure ------------------------------------------------------------------------------

def count_frames(viewer, seconds):
    """Frames a second `viewer` reads over `seconds`, by the stream's frame numbers."""
    header, _ = viewer.frame()
    started, first = time.time(), header[5]
    while time.time() - started < seconds:
        header, _ = viewer.frame()
    return (header[5] - first) / (time.time() - started)


def test_a_stalled_viewer_leaves_the_others_and_the_memory_alone(srv, a):
    _, (p,) = create_group(a, 1, name="streams-stalled")
    good, _ = opened(srv, a, p)
    base_fps = count_frames(good, 2)
    rss_before = rss_kib(srv.proc.pid)
    # Never reads: its socket's buffers fill and the server's writes to it stall.
    stalled = Viewer(srv, p, ticket(a, p), sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),))
    peak = [rss_before]
    done = threading.Event()

    def sample():
        while not done.wait(0.5):
            peak[0] = max(peak[0], rss_kib(srv.proc.pid))
    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        fps = count_frames(good, 10)
    finally:
        done.set()
        sampler.join()
    growth_mib = (peak[0] - rss_before) / 1024
    print(f"\nbeside a stalled viewer: {fps:.1f} frames/s (alone {base_fps:.1f}); RSS +{growth_mib:.1f} MiB")
    assert fps >= 15, fps
    assert growth_mib < 64, growth_mib
    assert session_status(a, p) == "connect"
    stalled.ws.sock.close()
    good.close()


def test_a_reader_outlives_the_idle_timeout_and_a_stalled_viewer_does_not(workdir):
    s = Server(workdir / "streams-idle", sim_delay_ms=10,
               extra_args=["--idle-timeout-secs", "2", "--stream-max-viewers-per-phone", "2"]).start()
    try:
        c = s.client()
        _, (p,) = create_group(c, 1, name="streams-idle")
        reader, h1 = opened(s, c, p)
        stalled = Viewer(s, p, ticket(c, p), sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),))
        # Admitted before the next one asks (its hello read, then nothing more).
        stalled.text_of("hello")
        # The phone's cap (2 here) counts the stalled viewer.
        assert Viewer(s, p, ticket(c, p)).closed() == (4429, "TooManyViewers")
        # Four idle timeouts later the reader still gets frames: its connection is held while
        # its socket lives. The stalled viewer's writes fail after the timeout and its session ends.
        until = time.time() + 8
        while time.time() < until:
            reader.frame()
        stalled_ids = [i for i, x in sessions(c, p).items() if i != h1["session"]]
        wait_for(lambda: all(sessions(c, p)[i]["Status"] == "Ended" for i in stalled_ids), timeout=20,
                 what="the stalled viewer dropped")
        assert sessions(c, p)[h1["session"]]["Status"] == "Live"
        reader.frame()
        stalled.ws.sock.close()
        reader.close()
    finally:
        s.stop()


def answered(srv):
    """Whether a plain HTTP request on a new connection gets an answer (not closed at once)."""
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        try:
            return conn.recv(64).startswith(b"HTTP/1.1")
        except ConnectionResetError:
            return False


def test_a_viewer_holds_its_connection_slot(workdir):
    s = Server(workdir / "streams-slots", sim_delay_ms=10, extra_args=["--max-connections", "2"]).start()
    try:
        c = s.client()
        _, (p,) = create_group(c, 1, name="streams-slots")
        t = ticket(c, p)
        first = Viewer(s, p, t)
        first.text_of("hello")
        second = Viewer(s, p, t)
        second.text_of("hello")
        # Both slots are taken by busy viewers: a new connection is closed at once, and neither
        # viewer is shed to make room for it.
        assert not answered(s)
        first.frame()
        second.frame()
        first.close()
        wait_for(lambda: answered(s), timeout=5, what="the slot freed once a viewer left")
        second.frame()
        second.close()
    finally:
        s.stop()
