"""Slow and silent clients, over raw sockets on loopback: a flood of silent connections (from one
address or many, on HTTP and on HTTPS) neither starves the server of file descriptors nor keeps
anyone else's request out; a request head, a request body and a kept-alive connection each have
their deadline, but a watch stream that sends nothing for longer than the idle timeout stays open.
Watch streams are capped per key and in all, and share one poll of the event log per account.
/metrics is served only where an option says.

Silent connections come from other loopback addresses (127.0.0.2 and up, which Linux routes to
`lo` like 127.0.0.1) where a test needs the callers it measures to be another address."""

import contextlib
import hashlib
import resource
import select
import socket
import threading
import time

import pytest
import requests
from alibabacloud_eds_aic20230930 import models
from alibabacloud_eds_aic20230930.client import Client
from alibabacloud_tea_openapi import models as open_api_models
from alibabacloud_tea_util.models import RuntimeOptions

from conftest import (API_VERSION, Server, acs3_signature, create_group, error_code, free_port, new_nonce,
                      self_signed_certificate, utc_now, wait_batch)


def at_least_open_files(n):
    """Raises this process's soft open-file limit to `n` (within the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        if hard != resource.RLIM_INFINITY and hard < n:
            pytest.fail(f"the test needs {n} open files; the hard limit is {hard}", pytrace=False)
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, hard))


def open_files_limit(pid):
    """The soft open-file limit of process `pid`."""
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                return int(line.split()[3])
    raise AssertionError("no open-file limit in /proc")


def limited_to(n):
    """A preexec_fn: the server may open `n` files, soft and hard (a distribution's default)."""
    return lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))


def silent(port, count, sources=("127.0.0.1",)):
    """`count` connections that never send a byte, spread over the `sources` addresses: opened
    64 at a time (non-blocking connects), each group given a moment to be accepted, since a
    connection the listen backlog (128) drops looks open to its client but is not the server's.
    A connection not established within 2 s is not counted."""
    socks = []
    for first in range(0, count, 64):
        pending, poll = {}, select.poll()
        for i in range(first, min(count, first + 64)):
            s = socket.socket()
            s.setblocking(False)
            s.bind((sources[i % len(sources)], 0))
            s.connect_ex(("127.0.0.1", port))
            pending[s.fileno()] = s
            poll.register(s, select.POLLOUT)
        deadline = time.time() + 2
        while pending and time.time() < deadline:
            for fd, _ in poll.poll(100):
                s = pending.pop(fd)
                poll.unregister(fd)
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                    s.setblocking(True)
                    socks.append(s)
                else:
                    s.close()
        for s in pending.values():
            s.close()
        time.sleep(0.01)
    return socks


def close_all(socks):
    for s in socks:
        s.close()


def closed_by_server(socks, within, enough=None):
    """The sockets among `socks` the server closed (EOF or reset) within `within` seconds (or
    the first `enough` of them to close)."""
    closed, waiting = set(), {s.fileno(): s for s in socks}
    poll = select.poll()
    for fd in waiting:
        poll.register(fd, select.POLLIN)
    deadline = time.time() + within
    while waiting and time.time() < deadline and (enough is None or len(closed) < enough):
        for fd, _ in poll.poll(max(0, int((deadline - time.time()) * 1000))):
            s = waiting[fd]
            try:
                gone = s.recv(1) == b""
            except (ConnectionResetError, TimeoutError, OSError):
                gone = True
            if gone:
                closed.add(s)
                del waiting[fd]
                poll.unregister(fd)
    return closed


def open_after(sock, seconds):
    """Whether the server left `sock` open for `seconds` more."""
    return not closed_by_server([sock], seconds)


def quick_client(server):
    return Client(open_api_models.Config(access_key_id=server.key[0], access_key_secret=server.key[1],
                                         endpoint=server.endpoint, protocol="http",
                                         connect_timeout=2000, read_timeout=2000))


# --- a flood of silent connections ------------------------------------------------------------

@pytest.fixture(scope="module")
def small_server(workdir):
    """A server whose process may open 1,024 files, as many distributions allow by default."""
    s = Server(workdir / "listeners-small", preexec_fn=limited_to(1024)).start()
    yield s
    s.stop()


def test_a_flood_of_silent_connections_leaves_healthz_and_the_api_answering(small_server):
    assert open_files_limit(small_server.proc.pid) == 1024
    at_least_open_files(4096)
    # 1,100 connections from 11 addresses, each far below the cap per address: only the total
    # cap (below the server's open-file limit) is in their way.
    flood = silent(small_server.port, 1100, sources=[f"127.0.0.{n}" for n in range(2, 13)])
    try:
        assert len(flood) >= 1000
        started = time.time()
        r = requests.get(f"http://{small_server.endpoint}/healthz", timeout=2)
        assert (r.status_code, r.text) == (200, "ok\n")
        # A signed call, which writes its nonce to the store: the store still opens its files.
        regions = quick_client(small_server).describe_regions(models.DescribeRegionsRequest()).body
        assert [x.region_id for x in regions.region_models] == ["cn-hangzhou"]
        assert time.time() - started < 2
        # The server shed silent connections to stay within its descriptors.
        shed = len(flood) - 768
        assert len(closed_by_server(flood, 2, enough=shed)) >= shed
    finally:
        close_all(flood)


def test_one_address_holds_at_most_its_cap_of_connections(server):
    at_least_open_files(4096)
    flood = silent(server.port, 300, sources=["127.0.0.20"])
    try:
        assert len(flood) == 300
        closed = closed_by_server(flood, 2, enough=300 - 256)
        # The default cap is 256 a address: the oldest idle ones made room for the newest.
        assert len(closed) >= 300 - 256
        assert flood[0] in closed and flood[-1] not in closed
        # The same address, with a request to send, still gets in.
        r = requests.get(f"http://{server.endpoint}/healthz", timeout=2)
        assert r.status_code == 200
    finally:
        close_all(flood)


# --- deadlines -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def quick(workdir):
    s = Server(workdir / "listeners-quick", extra_args=[
        "--header-timeout-secs", "1", "--body-timeout-secs", "1", "--idle-timeout-secs", "2"]).start()
    yield s
    s.stop()


def connect(server):
    s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    return s


def read_response(sock):
    """One HTTP/1.1 response with a Content-Length, read off `sock`: (status, body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    length = next(int(line.split(":")[1]) for line in lines if line.lower().startswith("content-length"))
    while len(body) < length:
        body += sock.recv(4096)
    return int(lines[0].split()[1]), body


def test_a_silent_connection_and_a_slow_head_are_cut_at_the_header_timeout(quick):
    mute = connect(quick)
    assert len(closed_by_server([mute], 2.5)) == 1
    slow = connect(quick)
    slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    started = time.time()
    while time.time() - started < 3:
        try:
            slow.sendall(b"X-Drip: 1\r\n")
        except OSError:
            break
        if closed_by_server([slow], 0.2):
            break
    assert time.time() - started < 2.5, "a head dripping in a byte at a time stayed open"
    mute.close()
    slow.close()


def test_a_kept_alive_connection_waits_the_idle_timeout_not_the_header_timeout(quick):
    s = connect(quick)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert read_response(s) == (200, b"ok\n")
    # Past the header timeout (1 s) it is still open: idle, not late with a head.
    assert open_after(s, 1.3)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert read_response(s) == (200, b"ok\n")
    started = time.time()
    assert closed_by_server([s], 4)
    assert 1.5 < time.time() - started < 3.5
    s.close()


def test_a_stalled_request_body_is_cut_at_the_body_timeout(quick):
    s = connect(quick)
    s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
              b"Content-Length: 1000\r\n\r\nAction=Describe")
    started = time.time()
    s.settimeout(4)
    got = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    assert time.time() - started < 2.5, "a body that stopped coming held its connection"
    assert not got or got.startswith(b"HTTP/1.1 4"), got[:100]
    s.close()


def signed_watch(server, key=None, query=()):
    """A raw socket with a signed GET /tasks/watch sent on it."""
    key_id, secret = key or server.key
    h = {
        "host": server.endpoint,
        "x-acs-action": "WatchTasks",
        "x-acs-version": API_VERSION,
        "x-acs-date": utc_now(),
        "x-acs-signature-nonce": new_nonce(),
        "x-acs-content-sha256": hashlib.sha256(b"").hexdigest(),
    }
    signed = sorted(h)
    sig = acs3_signature("GET", "/tasks/watch", list(query), h, signed, b"", secret)
    h["Authorization"] = f"ACS3-HMAC-SHA256 Credential={key_id},SignedHeaders={';'.join(signed)},Signature={sig}"
    target = "/tasks/watch" + ("?" + "&".join(f"{k}={v}" for k, v in query) if query else "")
    s = connect(server)
    s.sendall((f"GET {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n").encode())
    return s


def test_a_watch_stream_with_nothing_to_say_outlives_the_idle_timeout(quick):
    s = signed_watch(quick)
    s.settimeout(5)
    head = s.recv(4096)
    assert head.startswith(b"HTTP/1.1 200"), head
    # Nothing happens for longer than the idle timeout (2 s): the stream is not idle.
    assert open_after(s, 3)
    client = quick.client()
    _, ids = create_group(client, 1, name="listeners-watch")
    client.reboot_android_instances_in_group(models.RebootAndroidInstancesInGroupRequest(android_instance_ids=ids))
    got = b""
    deadline = time.time() + 10
    while b"event: task" not in got and time.time() < deadline:
        got += s.recv(4096)
    assert b"event: task" in got
    s.close()


# --- TLS handshakes ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def certificate(workdir):
    return self_signed_certificate(workdir / "listeners-tls")


@pytest.fixture(scope="module")
def tls_server(workdir, certificate):
    cert, key = certificate
    s = Server(workdir / "listeners-tls-data", extra_args=["--tls-cert", str(cert), "--tls-key", str(key)]).start()
    yield s
    s.stop()


def test_silent_connections_do_not_hold_up_tls_handshakes(tls_server, certificate):
    cert, _ = certificate
    at_least_open_files(4096)
    # More silent connections than the old 256 handshake slots, from four other addresses.
    flood = silent(tls_server.port, 400, sources=[f"127.0.0.{n}" for n in range(30, 34)])
    try:
        assert len(flood) >= 300
        started = time.time()
        for _ in range(5):
            r = requests.get(f"https://{tls_server.endpoint}/healthz", verify=str(cert), timeout=2)
            assert r.status_code == 200
        sdk = Client(open_api_models.Config(access_key_id=tls_server.key[0], access_key_secret=tls_server.key[1],
                                            endpoint=tls_server.endpoint, protocol="https",
                                            connect_timeout=2000, read_timeout=2000))
        regions = sdk.describe_regions_with_options(models.DescribeRegionsRequest(), RuntimeOptions(ca=str(cert)))
        assert regions.body.region_models[0].region_id == "cn-hangzhou"
        assert time.time() - started < 3
    finally:
        close_all(flood)


# --- watch streams ----------------------------------------------------------------------------

def response_head(sock):
    """The status line and headers of the response on `sock`, and what came after them."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, data
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head.decode(), rest


def open_watch(server, key=None):
    """A signed watch on a raw socket: (socket, status line and headers, what followed)."""
    sock = signed_watch(server, key=key)
    head, rest = response_head(sock)
    return sock, head, rest


def test_watch_streams_are_capped_per_key(server):
    key = server.create_key("listeners-watch-cap")
    streams = []
    try:
        # The default cap of one key is 32.
        for _ in range(32):
            sock, head, _ = open_watch(server, key)
            streams.append(sock)
            assert head.startswith("HTTP/1.1 200"), head
        sock, head, body = open_watch(server, key)
        sock.close()
        assert head.startswith("HTTP/1.1 429"), head
        assert b'"Code":"Throttling.WatchStreams"' in body, body
        # Another key of the same account is not held back by it.
        other = server.create_key("listeners-watch-cap")
        sock, head, _ = open_watch(server, other)
        streams.append(sock)
        assert head.startswith("HTTP/1.1 200"), head
        # A stream that ends gives its place back.
        streams.pop(0).close()
        deadline = time.time() + 5
        while True:
            sock, head, _ = open_watch(server, key)
            if head.startswith("HTTP/1.1 200") or time.time() > deadline:
                break
            sock.close()
            time.sleep(0.05)
        streams.append(sock)
        assert head.startswith("HTTP/1.1 200"), head
    finally:
        close_all(streams)


def test_watch_streams_are_capped_in_all(workdir):
    s = Server(workdir / "listeners-watch-caps", extra_args=["--max-watch-streams", "5"]).start()
    streams = []
    try:
        for _ in range(5):
            sock, head, _ = open_watch(s)
            streams.append(sock)
            assert head.startswith("HTTP/1.1 200"), head
        sock, head, body = open_watch(s, s.create_key("listeners-all-other"))
        sock.close()
        assert head.startswith("HTTP/1.1 429") and b"This node serves 5" in body, (head, body)
    finally:
        close_all(streams)
        s.stop()


def scrape(server, token):
    r = requests.get(f"http://{server.endpoint}/metrics", headers={"Authorization": f"Bearer {token}"},
                     timeout=10)
    assert r.status_code == 200
    return r.text


def sample(text, name):
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_the_streams_of_an_account_share_one_poll_of_the_log(workdir):
    from test_watch import events, until_batch_ends, watch

    s = Server(workdir / "listeners-watch-poll", extra_args=["--metrics-token", "t"]).start()
    opened = []
    try:
        client = s.client()
        _, ids = create_group(client, 2, name="shared-poll")
        opened = [watch(s) for _ in range(20)]
        assert all(w.status_code == 200 for w in opened)
        before = sample(scrape(s, "t"), "cloudphone_watch_polls_total") or 0
        time.sleep(2)
        polls = sample(scrape(s, "t"), "cloudphone_watch_polls_total") - before
        # One account: about 10 reads in 2 s (one every 200 ms), not one per stream (200).
        assert polls <= 20, polls
        # And every stream gets every event.
        r = client.reboot_android_instances_in_group(
            models.RebootAndroidInstancesInGroupRequest(android_instance_ids=ids)).body
        seen = []
        for w in opened:
            got = []
            until_batch_ends(events(w), r.tasks.parent_task_id, got)
            seen.append([i for i, d in got if d["InvokeId"] == r.request_id])
        assert len(seen[0]) >= 1 + 2 * 3, "the batch's and both children's transitions"
        assert all(x == seen[0] for x in seen), "every stream saw the same events"
    finally:
        for w in opened:
            w.close()
        s.stop()


# --- /metrics ---------------------------------------------------------------------------------

def test_metrics_are_not_served_to_anyone_by_default(server):
    r = requests.get(f"http://{server.endpoint}/metrics", timeout=10)
    assert r.status_code == 404 and "cloudphone_" not in r.text
    assert requests.get(f"http://{server.endpoint}/healthz", timeout=10).status_code == 200


def test_metrics_need_the_bearer_token(workdir):
    s = Server(workdir / "listeners-metrics-token", extra_args=["--metrics-token", "t0ken"]).start()
    try:
        url = f"http://{s.endpoint}/metrics"
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "t0ken"}):
            r = requests.get(url, headers=headers, timeout=10)
            assert r.status_code == 401 and "cloudphone_" not in r.text, headers
        r = requests.get(url, headers={"Authorization": "Bearer t0ken"}, timeout=10)
        assert r.status_code == 200 and "cloudphone_tasks" in r.text
    finally:
        s.stop()


def test_metrics_on_an_address_of_their_own(workdir):
    port = free_port()
    s = Server(workdir / "listeners-metrics-listen", extra_args=["--metrics-listen", f"127.0.0.1:{port}"]).start()
    try:
        r = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        assert r.status_code == 200 and "cloudphone_tasks" in r.text
        assert requests.get(f"http://127.0.0.1:{port}/readyz", timeout=10).text == "ready\n"
        assert requests.get(f"http://{s.endpoint}/metrics", timeout=10).status_code == 404
    finally:
        s.stop()
