"""The watch stream: GET /tasks/watch, server-sent events of task transitions, signed with
ACS3 like any call. Read here with a plain HTTP client (the SDK has no streaming call): cut
and resumed with Last-Event-ID, nothing is lost or repeated."""

import hashlib
import json
import threading
import time

import pytest
import requests
from alibabacloud_eds_aic20230930 import models

from conftest import (API_VERSION, Server, acs3_signature, create_group, error_code, new_nonce, tasks_of,
                      utc_now, wait_batch)

TERMINAL = ("Finished", "PartFinished", "Failed", "Skipped")


@pytest.fixture(scope="module")
def server(workdir):
    s = Server(workdir / "watch", sim_delay_ms=60).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def client(server):
    return server.client()


def watch(server, query=(), last_event_id=None, key=None, action="WatchTasks", sign_secret=None):
    """An open watch (a streaming `requests.Response`)."""
    key_id, secret = key or server.key
    query = sorted(query.items() if isinstance(query, dict) else query)
    h = {
        "host": server.endpoint,
        "x-acs-action": action,
        "x-acs-version": API_VERSION,
        "x-acs-date": utc_now(),
        "x-acs-signature-nonce": new_nonce(),
        "x-acs-content-sha256": hashlib.sha256(b"").hexdigest(),
    }
    signed = sorted(h)
    sig = acs3_signature("GET", "/tasks/watch", query, h, signed, b"", sign_secret or secret)
    h["Authorization"] = f"ACS3-HMAC-SHA256 Credential={key_id},SignedHeaders={';'.join(signed)},Signature={sig}"
    h["Accept"] = "text/event-stream"
    if last_event_id is not None:
        h["Last-Event-ID"] = last_event_id
    return requests.get(f"http://{server.endpoint}/tasks/watch", params=query, headers=h, stream=True,
                        timeout=30)


def events(response, kinds=("task",)):
    """(id, data) of each event of the types `kinds` of an open watch, as they arrive (one
    reader per response: the bytes one has read are its own)."""
    ident, data, event = None, [], "message"
    for line in response.iter_lines(chunk_size=1, decode_unicode=True):
        if line == "":
            if data and event in kinds:
                yield ident, json.loads("\n".join(data))
            ident, data, event = None, [], "message"
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "id":
                ident = value
            elif field == "event":
                event = value
            elif field == "data":
                data.append(value)


def until_batch_ends(stream, batch_id, into):
    """Reads events into `into` until batch `batch_id` is reported terminal."""
    for ident, data in stream:
        into.append((ident, data))
        if data["TaskId"] == batch_id and data["TaskStatus"] in TERMINAL:
            return


def test_a_cut_watch_resumes_with_nothing_lost_or_repeated(server, client):
    _, ids = create_group(client, 20, name="watched")
    first = watch(server)
    assert first.status_code == 200
    assert first.headers["content-type"].startswith("text/event-stream")
    r = client.reboot_android_instances_in_group(
        models.RebootAndroidInstancesInGroupRequest(android_instance_ids=ids)).body
    batch_id = r.tasks.parent_task_id
    seen = []
    stream = events(first)
    for ident, data in stream:
        seen.append((ident, data))
        if len(seen) == 25:
            break
    first.close()  # the cut
    second = watch(server, last_event_id=seen[-1][0])
    until_batch_ends(events(second), batch_id, seen)
    second.close()

    # The whole log of that call, replayed from the start, is exactly what the two saw.
    replay = watch(server, {"InvokeId": r.request_id}, last_event_id="0-0")
    reference = []
    until_batch_ends(events(replay), batch_id, reference)
    replay.close()
    mine = [(i, d) for i, d in seen if d["InvokeId"] == r.request_id]
    assert mine == reference
    assert len({i for i, _ in seen}) == len(seen), "no event twice"
    # Every child went Waiting, Processing, Finished, in that order, once each.
    for child in r.tasks.child_tasks:
        steps = [d["TaskStatus"] for _, d in mine if d["TaskId"] == child.task_id]
        assert steps == ["Waiting", "Processing", "Finished"], (child.task_id, steps)
    last = mine[-1][1]
    assert (last["TaskStatus"], last["TotalChildCount"], last["SuccessChildCount"],
            last["RunningChildCount"]) == ("Finished", 20, 20, 0)
    batch_steps = [d for _, d in mine if d["TaskId"] == batch_id]
    done = [d["SuccessChildCount"] for d in batch_steps]
    assert done == sorted(done) and done[-1] == 20, "the batch's progress only moves forward"
    assert len(mine) == 1 + 20 * 3 + len(batch_steps) - 1


def test_a_watch_says_where_it_starts_so_a_cut_before_any_event_loses_nothing(server, client):
    _, ids = create_group(client, 1, name="watch-ready")
    first = watch(server)
    start, data = next(events(first, kinds=("ready",)))
    assert data == {}
    first.close()  # cut before any task event
    r = client.reboot_android_instances_in_group(
        models.RebootAndroidInstancesInGroupRequest(android_instance_ids=ids)).body
    resumed = watch(server, last_event_id=start)
    stream = events(resumed, kinds=("ready", "task"))
    again, _ = next(stream)
    assert again == start
    got = []
    until_batch_ends(stream, r.tasks.parent_task_id, got)
    resumed.close()
    assert [d["TaskStatus"] for _, d in got if d["TaskId"] == r.tasks.child_tasks[0].task_id] == [
        "Waiting", "Processing", "Finished"]


def test_a_watch_filters_like_describe_tasks(server, client):
    _, ids = create_group(client, 2, name="watch-filter")
    tail = watch(server, {"Level": "1", "TaskType": "StopInstance"})
    stop = client.stop_android_instance(models.StopAndroidInstanceRequest(android_instance_ids=ids)).body
    (batch,) = tasks_of(client, invoke_id=stop.request_id, level=1)
    got = []
    until_batch_ends(events(tail), batch.task_id, got)
    tail.close()
    assert {d["Level"] for _, d in got} == {1}
    assert {d["TaskType"] for _, d in got} == {"StopInstance"}
    assert got[-1][1]["TaskStatus"] == "Finished"
    wait_batch(client, stop.request_id)


def test_a_watch_is_signed_and_checked(server, client):
    r = requests.get(f"http://{server.endpoint}/tasks/watch", timeout=10)
    assert r.status_code >= 400
    assert watch(server, sign_secret="wrong").status_code == 403
    bad = watch(server, action="DescribeTasks")
    assert error_code(bad) == (400, "InvalidParameter.x-acs-action")
    bad = watch(server, last_event_id="yesterday")
    assert error_code(bad) == (400, "InvalidParameter.Last-Event-ID")
    bad = watch(server, {"InstanceName": "x"})
    assert error_code(bad) == (400, "InvalidParameter.InstanceName")
    bad = watch(server, {"TaskStatus": "Done"})
    assert error_code(bad) == (400, "InvalidParameter.TaskStatus")


def test_a_stream_ends_once_its_key_is_disabled(server, client):
    from test_accounts import admin
    key = server.create_key("acct-watch-revoked")
    stream = watch(server, key=key)
    assert stream.status_code == 200
    started = time.time()
    admin(server, "keys", "disable", key[0])
    # The server closes the stream within its recheck (read on a thread, so that a stream that
    # stays open fails the test instead of hanging it).
    got = []
    reader = threading.Thread(target=lambda: got.extend(events(stream)), daemon=True)
    reader.start()
    reader.join(timeout=20)
    assert not reader.is_alive(), "the stream of a disabled key stayed open"
    assert got == [] and time.time() - started < 20
    stream.close()
    assert watch(server, key=key).status_code >= 400


def test_another_account_sees_nothing_of_the_first(server, client):
    other = server.create_key("acct-watch-other")
    theirs = watch(server, last_event_id="0-0", key=other)
    assert theirs.status_code == 200
    # Something of the first account happens; then the other account's own call.
    _, ids = create_group(client, 1, name="watch-mine")
    oc = server.client(key=other)
    _, their_ids = create_group(oc, 1, name="watch-theirs")
    r = oc.reboot_android_instances_in_group(
        models.RebootAndroidInstancesInGroupRequest(android_instance_ids=their_ids)).body
    got = []
    until_batch_ends(events(theirs), r.tasks.parent_task_id, got)
    theirs.close()
    assert {d["InvokeId"] for _, d in got} == {r.request_id}
    assert not {d.get("InstanceId") for _, d in got} & set(ids)
