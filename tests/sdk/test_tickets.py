"""Connection tickets and sessions (issue 23) through the official SDK: BatchGetAcpConnectionTicket
(by InstanceIds, by InstanceGroupId, polled with InstanceTasks), DisconnectAndroidInstance (with
and without EndUserId), SessionStatus in DescribeAndroidInstances, the extension
DescribeStreamSessions, and `cloudphone instances view`.

Tickets are read here as any holder can read them (their claims are base64url JSON; only the
signature is secret), to check what they carry: the phone, the end user, the access key, the
expiry, and the phone's epochs, which DisconnectAndroidInstance moves on. That a ticket with
epochs of before a disconnect no longer opens a session is checked where sessions open, against
a real store (crates/stream/tests/tickets.rs, and the store's conformance suite); the WebSocket
that opens them end to end comes with the stream server.

SessionStatus reads the live sessions of the database, as every node does: the test writes a
session row there itself (SQLite beside the running server, or psql), as a node holding a
viewer's WebSocket would, and reads it back through the API."""

import base64
import json
import re
import sqlite3
import subprocess
import time
import uuid

import pytest
from alibabacloud_eds_aic20230930 import models

from conftest import (BINARY, KEY_ID, KEY_SECRET, REQUEST_ID_RE, Server, api_error, create_group, describe_instances,
                      psql, wait_batch)

TTL_SECS = 90
TASK_ID = re.compile(r"^cn-hangzhou@[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
TICKET = re.compile(r"^cpt1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$")


@pytest.fixture(scope="module")
def srv(workdir):
    """A server of its own: its database is written to by the SessionStatus test, and it logs at
    debug level so that the log can be searched for tickets."""
    import os
    saved = os.environ.get("RUST_LOG")
    os.environ["RUST_LOG"] = "debug"
    try:
        s = Server(workdir / "tickets", extra_args=["--stream-ticket-ttl-secs", str(TTL_SECS)]).start()
    finally:
        if saved is None:
            del os.environ["RUST_LOG"]
        else:
            os.environ["RUST_LOG"] = saved
    yield s
    s.stop()


@pytest.fixture(scope="module")
def a(srv):
    return srv.client()


@pytest.fixture(scope="module")
def b(srv):
    """Another account on the same server."""
    return srv.client(key=srv.create_key("acct-tickets-b"))


@pytest.fixture(scope="module")
def farm(a):
    """A group of three RUNNING phones of account a."""
    return create_group(a, 3, name="tickets")


def claims(ticket):
    assert TICKET.match(ticket), ticket
    body = ticket.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


def tickets(client, **kw):
    r = client.batch_get_acp_connection_ticket(models.BatchGetAcpConnectionTicketRequest(**kw)).body
    assert REQUEST_ID_RE.match(r.request_id)
    return r.instance_connection_models


def epochs(client, phone, user=None):
    (m,) = tickets(client, instance_ids=[phone], end_user_id=user)
    return claims(m.ticket)["e"]


def poll(client, pairs, **kw):
    return tickets(client, instance_tasks=[
        models.BatchGetAcpConnectionTicketRequestInstanceTasks(instance_id=i, task_id=t) for i, t in pairs], **kw)


def session_status(client, ids):
    return {i: m.session_status for i, m in describe_instances(client, ids).items()}


def disconnect(client, ids, user=None):
    r = client.disconnect_android_instance(models.DisconnectAndroidInstanceRequest(
        instance_ids=ids, end_user_id=user)).body
    assert REQUEST_ID_RE.match(r.request_id)
    return r


# --- BatchGetAcpConnectionTicket -------------------------------------------------------------

def test_each_phone_gets_a_finished_task_and_a_signed_ticket(a, farm):
    _, phones = farm
    before = int(time.time() * 1000)
    models_ = tickets(a, instance_ids=phones[::-1] + [phones[0]])
    after = int(time.time() * 1000)
    assert [m.instance_id for m in models_] == phones[::-1], "in the order asked, duplicates merged"
    seen = set()
    for m in models_:
        assert m.task_status == "FINISHED" and TASK_ID.match(m.task_id), m.to_map()
        assert m.error_code is None and m.port is None and m.app_instance_id is None
        assert len(m.ticket) < 400
        c = claims(m.ticket)
        assert c["i"] == m.instance_id and c["t"] == m.task_id
        assert c["u"] == "" and c["k"] == KEY_ID and c["a"] == "root"
        assert c["e"] == [0, 0]
        assert before <= c["iat"] <= after and c["exp"] - c["iat"] == TTL_SECS * 1000
        assert KEY_SECRET not in m.ticket
        seen.add(m.task_id)
    assert len(seen) == 3, "a TaskId per phone"
    # The raw answer is the vendor's shape and nothing more.
    raw = a.batch_get_acp_connection_ticket(
        models.BatchGetAcpConnectionTicketRequest(instance_ids=phones[:1])).body.to_map()
    assert set(raw) == {"RequestId", "InstanceConnectionModels"}
    assert set(raw["InstanceConnectionModels"][0]) == {"InstanceId", "TaskId", "TaskStatus", "Ticket"}


def test_polling_with_instance_tasks_gets_the_same_shape(a, farm):
    _, phones = farm
    first = tickets(a, instance_ids=phones[:2], end_user_id="poller")
    pairs = [(m.instance_id, m.task_id) for m in first]
    polled = poll(a, pairs + [pairs[0]], end_user_id="poller")
    assert [(m.instance_id, m.task_id) for m in polled] == pairs + [pairs[0]], "each task answered"
    for m in polled:
        assert m.task_status == "FINISHED"
        c = claims(m.ticket)
        assert (c["i"], c["t"], c["u"]) == (m.instance_id, m.task_id, "poller")
    # A TaskId this server did not give, or of another region, is refused.
    for bad in ["t-0123456789abcdef", "cn-hangzhou@" + uuid.uuid4().hex, "cn-shanghai@" + str(uuid.uuid4()),
                "@" + str(uuid.uuid4())]:
        e = api_error(poll, a, [(phones[0], bad)])
        assert (e.status_code, e.code) == (400, "InvalidParameter.InstanceTasks.TaskId"), bad
    # A poll names its phones itself.
    e = api_error(tickets, a, instance_ids=phones[:1], instance_tasks=[
        models.BatchGetAcpConnectionTicketRequestInstanceTasks(instance_id=phones[0], task_id=pairs[0][1])])
    assert (e.status_code, e.code) == (400, "InvalidParameter.InstanceTasks")
    e = api_error(tickets, a, instance_tasks=[
        models.BatchGetAcpConnectionTicketRequestInstanceTasks(instance_id=phones[0])])
    assert (e.status_code, e.code) == (400, "MissingParameter.InstanceTasks.TaskId")


def test_a_group_alone_or_with_its_phones(a, farm):
    group, phones = farm
    by_group = tickets(a, instance_group_id=group)
    assert sorted(m.instance_id for m in by_group) == sorted(phones)
    assert all(m.task_status == "FINISHED" for m in by_group)
    assert [m.instance_id for m in tickets(a, instance_group_id=group, instance_ids=phones[1:2])] == phones[1:2]
    other_group, other = create_group(a, 1, name="tickets-other")
    e = api_error(tickets, a, instance_group_id=group, instance_ids=[phones[0], other[0]])
    assert (e.status_code, e.code) == (400, "InvalidParameter.InstanceIds")
    assert other[0] in e.message
    e = api_error(tickets, a, instance_group_id="ag-0000000000000000")
    assert (e.status_code, e.code) == (404, "InvalidInstanceGroupId.NotFound")
    assert [m.instance_id for m in tickets(a, instance_group_id=other_group)] == other


def test_end_user_id_connection_mode_and_ports(a, farm):
    _, phones = farm
    (m,) = tickets(a, instance_ids=phones[:1], end_user_id="alice@example.com", connection_mode="custom",
                   ports=["8080", "9090"])
    assert m.task_status == "FINISHED" and claims(m.ticket)["u"] == "alice@example.com"
    assert m.port is None, "ports choose nothing here"
    for bad in ["a b", "*", "x" * 65, "ü"]:
        e = api_error(tickets, a, instance_ids=phones[:1], end_user_id=bad)
        assert (e.status_code, e.code) == (400, "InvalidParameter.EndUserId"), bad
        e = api_error(disconnect, a, phones[:1], bad)
        assert (e.status_code, e.code) == (400, "InvalidParameter.EndUserId"), bad


def test_bad_input_is_refused_and_changes_nothing(a, farm):
    _, phones = farm
    before = epochs(a, phones[0])
    e = api_error(tickets, a)
    assert (e.status_code, e.code) == (400, "MissingParameter.InstanceIds")
    # 1 to 100 ids: 101 are refused before anything is looked up, 100 are looked up.
    many = [f"acp-{n:016d}" for n in range(101)]
    e = api_error(tickets, a, instance_ids=many)
    assert (e.status_code, e.code) == (400, "InvalidParameter.InstanceIds")
    e = api_error(tickets, a, instance_ids=many[:100])
    assert (e.status_code, e.code) == (404, "InvalidInstanceIds.NotFound")
    e = api_error(poll, a, [(i, "cn-hangzhou@" + str(uuid.uuid4())) for i in many])
    assert (e.status_code, e.code) == (400, "InvalidParameter.InstanceTasks")
    # An unknown phone fails the whole call, even beside known ones.
    e = api_error(tickets, a, instance_ids=[phones[0], "acp-0000000000000000"])
    assert (e.status_code, e.code) == (404, "InvalidInstanceIds.NotFound")

    e = api_error(disconnect, a, [])
    assert (e.status_code, e.code) == (400, "MissingParameter.InstanceIds")
    e = api_error(disconnect, a, many)
    assert (e.status_code, e.code) == (400, "InvalidParameter.InstanceIds")
    # All or none: the known phone beside an unknown one is not disconnected.
    e = api_error(disconnect, a, [phones[0], "acp-0000000000000000"])
    assert (e.status_code, e.code) == (404, "InvalidInstanceIds.NotFound")
    assert epochs(a, phones[0]) == before, "nothing moved on"


def test_another_accounts_phone_is_not_found(a, b, farm):
    group, phones = farm
    before = epochs(a, phones[0])
    e = api_error(tickets, b, instance_ids=phones[:1])
    assert (e.status_code, e.code) == (404, "InvalidInstanceIds.NotFound")
    e = api_error(tickets, b, instance_group_id=group)
    assert (e.status_code, e.code) == (404, "InvalidInstanceGroupId.NotFound")
    (m,) = tickets(a, instance_ids=phones[:1])
    e = api_error(poll, b, [(m.instance_id, m.task_id)])
    assert (e.status_code, e.code) == (404, "InvalidInstanceTasks.InstanceId.NotFound")
    e = api_error(disconnect, b, phones[:1])
    assert (e.status_code, e.code) == (404, "InvalidInstanceIds.NotFound")
    e = api_error(disconnect, b, phones[:1], "alice")
    assert (e.status_code, e.code) == (404, "InvalidInstanceIds.NotFound")
    assert epochs(a, phones[0]) == before
    listed = call_sessions(b, InstanceIds=phones[:1])
    assert listed["TotalCount"] == 0 and listed["Sessions"] == []


def test_a_phone_that_is_not_running_fails_without_a_ticket(a):
    _, (up, down) = create_group(a, 2, name="tickets-stopped")
    r = a.stop_android_instance(models.StopAndroidInstanceRequest(android_instance_ids=[down])).body
    wait_batch(a, r.request_id)
    by_id = {m.instance_id: m for m in tickets(a, instance_ids=[up, down])}
    assert by_id[up].task_status == "FINISHED" and by_id[up].ticket
    failed = by_id[down]
    assert (failed.task_status, failed.error_code, failed.ticket) == ("FAILED", "InstanceNotRunning", None)
    assert TASK_ID.match(failed.task_id)
    (polled,) = poll(a, [(down, failed.task_id)])
    assert (polled.task_status, polled.error_code, polled.ticket) == ("FAILED", "InstanceNotRunning", None)
    # Disconnecting a stopped phone is allowed: its tickets in flight stop opening.
    disconnect(a, [down])


# --- DisconnectAndroidInstance -----------------------------------------------------------------

def test_disconnect_moves_on_the_epochs_earlier_tickets_carry(a):
    _, (p, q) = create_group(a, 2, name="tickets-disconnect")
    assert epochs(a, p, "alice") == [0, 0] and epochs(a, p, "bob") == [0, 0] and epochs(a, p) == [0, 0]
    # One end user: only that user's tickets of that phone are left behind.
    r = disconnect(a, [p], "alice")
    assert set(r.to_map()) == {"RequestId"}
    assert epochs(a, p, "alice") == [0, 1]
    assert epochs(a, p, "bob") == [0, 0] and epochs(a, p) == [0, 0]
    assert epochs(a, q, "alice") == [0, 0]
    # The whole phone: every user's.
    disconnect(a, [p, p])
    assert epochs(a, p, "alice") == [1, 1] and epochs(a, p, "bob") == [1, 0] and epochs(a, p) == [1, 0]
    assert epochs(a, q) == [0, 0]
    disconnect(a, [p, q])
    assert epochs(a, p) == [2, 0] and epochs(a, q) == [1, 0]


# --- SessionStatus and DescribeStreamSessions ---------------------------------------------------

def db(srv, sql, args=()):
    """Runs one statement on the server's database, as a node holding a viewer would."""
    if srv.database:
        def lit(v):
            return "NULL" if v is None else str(v) if isinstance(v, int) else "'" + v.replace("'", "''") + "'"
        parts = sql.split("?")
        text = parts[0] + "".join(lit(v) + rest for v, rest in zip(args, parts[1:]))
        psql(srv.database, text)
        return
    conn = sqlite3.connect(srv.data_dir / "cloudphone.db", timeout=30)
    try:
        with conn:
            conn.execute(sql, args)
    finally:
        conn.close()


def open_session_row(srv, session_id, instance, user, heartbeat_ms, role="control"):
    now = int(time.time() * 1000)
    db(srv, "INSERT INTO stream_sessions (id, account_id, instance_id, end_user_id, key_id, task_id, node_id, "
            "peer, role, opened_ms, heartbeat_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
       (session_id, "root", instance, user, KEY_ID, "cn-hangzhou@" + str(uuid.uuid4()), "node-test",
        "127.0.0.1:45678", role, now - 60_000, heartbeat_ms))


def call_sessions(client, **query):
    from conftest import call
    flat = {}
    for k, v in query.items():
        if isinstance(v, list):
            flat.update({f"{k}.{n}": x for n, x in enumerate(v, 1)})
        else:
            flat[k] = v
    return call(client, "DescribeStreamSessions", flat)


def test_session_status_follows_live_sessions(srv, a):
    _, (p, q, r) = create_group(a, 3, name="tickets-sessions")
    assert session_status(a, [p, q, r]) == {p: "disConnect", q: "disConnect", r: "disConnect"}
    now = int(time.time() * 1000)
    open_session_row(srv, "ss-test00000000001", p, "alice", now + 60_000)
    open_session_row(srv, "ss-test00000000002", p, "bob", now + 60_000, role="view")
    # A session whose node stopped beating 20 s ago is no viewer.
    open_session_row(srv, "ss-test00000000003", q, "", now - 20_000)
    assert session_status(a, [p, q, r]) == {p: "connect", q: "disConnect", r: "disConnect"}

    listed = call_sessions(a, InstanceIds=[p, q])
    assert listed["TotalCount"] == 3 and REQUEST_ID_RE.match(listed["RequestId"])
    by_id = {s["SessionId"]: s for s in listed["Sessions"]}
    alice = by_id["ss-test00000000001"]
    assert (alice["InstanceId"], alice["EndUserId"], alice["Role"], alice["Status"], alice["AccessKeyId"]) == (
        p, "alice", "Control", "Live", KEY_ID)
    assert alice["Peer"] == "127.0.0.1:45678" and alice["NodeId"] == "node-test"
    assert "EndedTime" not in alice
    assert by_id["ss-test00000000002"]["Role"] == "View"
    assert by_id["ss-test00000000003"]["Status"] == "Stale"
    live = call_sessions(a, InstanceIds=[p, q], Live="true")
    assert sorted(s["SessionId"] for s in live["Sessions"]) == ["ss-test00000000001", "ss-test00000000002"]
    page = call_sessions(a, InstanceIds=[p, q], MaxResults=2)
    assert len(page["Sessions"]) == 2 and page["NextToken"]
    rest = call_sessions(a, InstanceIds=[p, q], MaxResults=2, NextToken=page["NextToken"])
    assert len(rest["Sessions"]) == 1 and "NextToken" not in rest
    e = api_error(call_sessions, a, InstanceIds=[p], MaxResults=2, NextToken=page["NextToken"])
    assert (e.status_code, e.code) == (400, "InvalidParameter.NextToken"), "a token is bound to its filters"

    # Disconnecting bob leaves alice watching; disconnecting the phone ends her too.
    disconnect(a, [p], "bob")
    assert session_status(a, [p]) == {p: "connect"}
    disconnect(a, [p])
    assert session_status(a, [p, q, r]) == {p: "disConnect", q: "disConnect", r: "disConnect"}
    ended = {s["SessionId"]: s for s in call_sessions(a, InstanceIds=[p])["Sessions"]}
    for sid in ("ss-test00000000001", "ss-test00000000002"):
        assert (ended[sid]["Status"], ended[sid]["EndReason"]) == ("Ended", "Disconnected")
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", ended[sid]["EndedTime"])
    assert call_sessions(a, InstanceIds=[p], Live="true")["Sessions"] == []


# --- never logged, never audited; the CLI -------------------------------------------------------

def test_tickets_are_neither_logged_nor_audited(srv, a, farm):
    _, phones = farm
    issued = [m.ticket for m in tickets(a, instance_ids=phones)]
    cmd = [str(BINARY), "admin", "audit", "--action", "BatchGetAcpConnectionTicket", "--output", "json",
           "--data-dir", str(srv.data_dir)]
    if srv.database:
        cmd += ["--database-url", srv.database]
    entries = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=60).stdout)
    assert any(e["Outcome"] == "Success" and phones[0] in e["ResourceIds"] for e in entries), "audited"
    assert "cpt1." not in json.dumps(entries)
    # The server writes its log unbuffered, at debug level here.
    log = (srv.data_dir.parent / f"{srv.data_dir.name}.log").read_text(errors="replace")
    assert "BatchGetAcpConnectionTicket" in log, "the log names the calls"
    assert "DescribeAndroidInstances" in log, "reads are logged at debug level only: this log is at debug"
    for t in issued:
        assert t.split(".")[1] not in log and t.split(".")[2] not in log
    assert "cpt1." not in log


def test_cli_view_prints_the_viewer_url(srv, a):
    _, (p, down) = create_group(a, 2, name="tickets-cli")
    r = a.stop_android_instance(models.StopAndroidInstanceRequest(android_instance_ids=[down])).body
    wait_batch(a, r.request_id)

    def view(*args):
        return subprocess.run([str(BINARY), "instances", "view", *args, "--endpoint", f"http://{srv.endpoint}",
                               "--access-key-id", KEY_ID, "--access-key-secret", KEY_SECRET],
                              capture_output=True, text=True, timeout=60)

    out = view(p)
    assert out.returncode == 0, out.stderr
    m = re.fullmatch(rf"http://{re.escape(srv.endpoint)}/console/view/{p}#t=(cpt1\.\S+)\n", out.stdout)
    assert m, out.stdout
    c = claims(m.group(1))
    assert (c["i"], c["u"]) == (p, "")
    out = view(p, "--end-user-id", "alice", "--public-url", "https://phones.example.com/")
    assert out.returncode == 0, out.stderr
    m = re.fullmatch(rf"https://phones\.example\.com/console/view/{p}#t=(cpt1\.\S+)\n", out.stdout)
    assert m and claims(m.group(1))["u"] == "alice", out.stdout
    out = view(down)
    assert out.returncode == 1 and out.stdout == "" and "InstanceNotRunning" in out.stderr, out
    out = view("acp-0000000000000000")
    assert out.returncode == 1 and "InvalidInstanceIds.NotFound" in out.stderr, out
