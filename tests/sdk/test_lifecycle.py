"""Start, stop, reboot and reset through the SDK: response shapes, the batch + children created
before the call returns, instance statuses after each operation, batch status and counters
(Finished, PartFinished, Failed, Skipped), IncorrectInstanceStatus, injected faults, Operator."""

import time
import uuid

import pytest
from alibabacloud_eds_aic20230930 import models

from conftest import (ISO_RE, REQUEST_ID_RE, Server, call, clear_faults, create_group,
                      describe_instances, inject_fault, tasks_of, wait_batch, wait_for)

TERMINAL = {"Finished", "PartFinished", "Failed", "Skipped"}


def statuses(client, ids):
    found = describe_instances(client, ids)
    return [found[i].android_instance_status for i in ids]


def counters(batch):
    return (batch.task_status, batch.total_child_count, batch.success_child_count,
            batch.failed_child_count, batch.running_child_count)


def children(client, batch):
    kids = tasks_of(client, parent_task_id=batch.task_id)
    assert all(k.level == 2 and k.invoke_id == batch.invoke_id for k in kids)
    return {k.instance_id: k for k in kids}


def start(client, ids):
    return client.start_android_instance(models.StartAndroidInstanceRequest(android_instance_ids=ids)).body


def stop(client, ids, **kw):
    return client.stop_android_instance(models.StopAndroidInstanceRequest(android_instance_ids=ids, **kw)).body


def reboot(client, ids, **kw):
    return client.reboot_android_instances_in_group(
        models.RebootAndroidInstancesInGroupRequest(android_instance_ids=ids, **kw)).body


def reset(client, ids, **kw):
    return client.reset_android_instances_in_group(
        models.ResetAndroidInstancesInGroupRequest(android_instance_ids=ids, **kw)).body


def check_terminal_child(t):
    assert t.task_status in TERMINAL
    assert ISO_RE.match(t.start_time) and ISO_RE.match(t.finish_time)
    assert t.finish_time >= t.start_time


def test_stop_then_start(client):
    _, ids = create_group(client, 2, name="life-stop")
    r = stop(client, ids)
    assert REQUEST_ID_RE.match(r.request_id)
    # Visible at once under InvokeId = RequestId: the batch and one child per instance.
    seen = tasks_of(client, invoke_id=r.request_id)
    assert len(seen) == 3
    assert {t.task_type for t in seen} == {"StopInstance"}
    assert sorted(t.level for t in seen) == [1, 2, 2]
    assert {t.instance_id for t in seen if t.level == 2} == set(ids)
    batch = wait_batch(client, r.request_id)
    assert counters(batch) == ("Finished", 2, 2, 0, 0)
    assert batch.resource_id == "" and not batch.instance_id
    assert statuses(client, ids) == ["STOPPED", "STOPPED"]
    for iid, t in children(client, batch).items():
        assert t.task_status == "Finished" and t.instance_status == "STOPPED"
        assert t.resource_id == iid
        check_terminal_child(t)

    r = start(client, ids)
    assert len(tasks_of(client, invoke_id=r.request_id)) == 3
    batch = wait_batch(client, r.request_id)
    assert batch.task_type == "StartInstance"
    assert counters(batch) == ("Finished", 2, 2, 0, 0)
    assert statuses(client, ids) == ["RUNNING", "RUNNING"]
    assert {t.instance_status for t in children(client, batch).values()} == {"RUNNING"}


def test_start_on_running_is_skipped(client):
    _, ids = create_group(client, 2, name="life-skip")
    r = start(client, ids)
    batch = wait_batch(client, r.request_id)
    assert counters(batch) == ("Skipped", 2, 0, 0, 0)
    assert ISO_RE.match(batch.finish_time)
    for t in children(client, batch).values():
        assert t.task_status == "Skipped"
        assert not t.error_code
        check_terminal_child(t)
    assert statuses(client, ids) == ["RUNNING", "RUNNING"]


def test_stop_on_stopped_is_skipped_and_mixed_batch_is_finished(client):
    _, ids = create_group(client, 2, name="life-skip2")
    wait_batch(client, stop(client, ids[:1]).request_id)
    # ids[0] is STOPPED: its child is Skipped, ids[1]'s is Finished; nothing failed -> Finished.
    batch = wait_batch(client, stop(client, ids).request_id)
    assert counters(batch) == ("Finished", 2, 1, 0, 0)
    kids = children(client, batch)
    assert kids[ids[0]].task_status == "Skipped"
    assert kids[ids[1]].task_status == "Finished"
    assert statuses(client, ids) == ["STOPPED", "STOPPED"]
    batch = wait_batch(client, stop(client, ids).request_id)
    assert counters(batch) == ("Skipped", 2, 0, 0, 0)


def test_reboot_mix_of_running_and_stopped_is_part_finished(client):
    _, ids = create_group(client, 2, name="life-mix")
    running, stopped = ids
    wait_batch(client, stop(client, [stopped]).request_id)
    r = reboot(client, [running, stopped])
    assert {c.instance_id for c in r.tasks.child_tasks} == {running, stopped}
    batch = wait_batch(client, r.request_id)
    assert batch.task_id == r.tasks.parent_task_id
    assert counters(batch) == ("PartFinished", 2, 1, 1, 0)
    kids = children(client, batch)
    assert kids[running].task_status == "Finished"
    assert not kids[running].error_code
    bad = kids[stopped]
    assert bad.task_status == "Failed"
    assert bad.error_code == "IncorrectInstanceStatus"
    assert bad.error_msg
    check_terminal_child(bad)
    # A failed precondition changes nothing.
    assert statuses(client, [running, stopped]) == ["RUNNING", "STOPPED"]
    assert bad.instance_status == "STOPPED"


def test_reboot_of_stopped_only_is_failed(client):
    _, ids = create_group(client, 2, name="life-fail")
    wait_batch(client, stop(client, ids).request_id)
    r = reboot(client, ids)
    batch = wait_batch(client, r.request_id)
    assert counters(batch) == ("Failed", 2, 0, 2, 0)
    assert {t.error_code for t in children(client, batch).values()} == {"IncorrectInstanceStatus"}
    assert statuses(client, ids) == ["STOPPED", "STOPPED"]


def test_reset_from_running_and_stopped(client):
    _, ids = create_group(client, 2, name="life-reset")
    wait_batch(client, stop(client, ids[:1]).request_id)
    r = reset(client, ids)
    assert {c.instance_id: c.task_id for c in r.tasks.child_tasks}.keys() == set(ids)
    batch = wait_batch(client, r.request_id)
    assert batch.task_type == "ResetInstance"
    assert counters(batch) == ("Finished", 2, 2, 0, 0)
    assert statuses(client, ids) == ["RUNNING", "RUNNING"]


def test_injected_fault_fails_the_task(client):
    _, ids = create_group(client, 2, name="life-fault")
    a, b = ids
    try:
        inject_fault(client, a, "StopInstance", "OperationFailed", "the simulated disk is on fire", count=1)
        # Only a's stop fails: the batch is PartFinished.
        batch = wait_batch(client, stop(client, ids).request_id)
        assert counters(batch) == ("PartFinished", 2, 1, 1, 0)
        kids = children(client, batch)
        assert (kids[a].task_status, kids[a].error_code, kids[a].error_msg) == \
            ("Failed", "OperationFailed", "the simulated disk is on fire")
        check_terminal_child(kids[a])
        assert kids[b].task_status == "Finished"
        # A failed stop leaves the instance as it was.
        assert statuses(client, ids) == ["RUNNING", "STOPPED"]
        # Count=1: the fault is spent, the next stop works.
        batch = wait_batch(client, stop(client, [a]).request_id)
        assert counters(batch) == ("Finished", 1, 1, 0, 0)

        assert statuses(client, ids) == ["STOPPED", "STOPPED"]

        inject_fault(client, a, "StartInstance", "InstanceUnreachable", "no answer", count=2)
        batch = wait_batch(client, start(client, ids).request_id)
        assert counters(batch) == ("PartFinished", 2, 1, 1, 0)
        kids = children(client, batch)
        assert (kids[a].error_code, kids[a].error_msg) == ("InstanceUnreachable", "no answer")
        # A failed start leaves the phone as it was.
        assert statuses(client, ids) == ["STOPPED", "RUNNING"]
        batch = wait_batch(client, start(client, [a]).request_id)
        assert counters(batch) == ("Failed", 1, 0, 1, 0)
    finally:
        clear_faults(client)
    # Cleared: the next start works.
    batch = wait_batch(client, start(client, [a]).request_id)
    assert counters(batch) == ("Finished", 1, 1, 0, 0)


def test_every_child_failing_gives_failed_with_the_injected_error(client):
    _, ids = create_group(client, 2, name="life-fault2")
    try:
        for i in ids:
            inject_fault(client, i, "RebootInstance", "OperationFailed", f"boom {i}")
        r = reboot(client, ids)
        batch = wait_batch(client, r.request_id)
        assert counters(batch) == ("Failed", 2, 0, 2, 0)
        for i, t in children(client, batch).items():
            assert (t.error_code, t.error_msg) == ("OperationFailed", f"boom {i}")
        # A reboot that failed on the phone leaves it UNAVAILABLE (docs/design.md §4).
        assert statuses(client, ids) == ["UNAVAILABLE", "UNAVAILABLE"]
    finally:
        clear_faults(client)
    # From UNAVAILABLE a reboot is allowed and brings the phone back.
    batch = wait_batch(client, reboot(client, ids).request_id)
    assert counters(batch) == ("Finished", 2, 2, 0, 0)
    assert statuses(client, ids) == ["RUNNING", "RUNNING"]


def test_fault_on_one_instance_does_not_touch_others(client):
    _, ids = create_group(client, 2, name="life-fault3")
    try:
        inject_fault(client, ids[0], "ResetInstance", "OperationFailed", "only me")
        batch = wait_batch(client, reset(client, ids).request_id)
        assert counters(batch) == ("PartFinished", 2, 1, 1, 0)
        kids = children(client, batch)
        assert kids[ids[0]].error_msg == "only me"
        assert kids[ids[1]].task_status == "Finished"
    finally:
        clear_faults(client)


def test_response_shapes(client):
    _, ids = create_group(client, 2, name="life-shape")
    q = {"AndroidInstanceIds.1": ids[0], "AndroidInstanceIds.2": ids[1]}
    for action in ("StopAndroidInstance", "StartAndroidInstance"):
        body = call(client, action, q)
        assert set(body) == {"RequestId"}, body
        assert REQUEST_ID_RE.match(body["RequestId"])
        wait_batch(client, body["RequestId"])
    for action in ("RebootAndroidInstancesInGroup", "ResetAndroidInstancesInGroup"):
        body = call(client, action, q)
        assert set(body) == {"RequestId", "Tasks"}, body
        tasks = body["Tasks"]
        assert set(tasks) == {"ParentTaskId", "ChildTasks"}
        assert [set(c) for c in tasks["ChildTasks"]] == [{"InstanceId", "TaskId"}] * 2
        # The children come in the order of the call.
        assert [c["InstanceId"] for c in tasks["ChildTasks"]] == ids
        seen = {t.task_id: t for t in tasks_of(client, invoke_id=body["RequestId"])}
        assert set(seen) == {tasks["ParentTaskId"], *(c["TaskId"] for c in tasks["ChildTasks"])}
        assert seen[tasks["ParentTaskId"]].level == 1
        for c in tasks["ChildTasks"]:
            assert seen[c["TaskId"]].instance_id == c["InstanceId"]
            assert seen[c["TaskId"]].parent_task_id == tasks["ParentTaskId"]
        wait_batch(client, body["RequestId"])


def test_duplicate_ids_are_merged(client):
    _, ids = create_group(client, 2, name="life-dup")
    a, b = ids
    r = reboot(client, [a, b, a, a])
    assert [c.instance_id for c in r.tasks.child_tasks] == [a, b]
    batch = wait_batch(client, r.request_id)
    assert counters(batch) == ("Finished", 2, 2, 0, 0)
    assert len(tasks_of(client, invoke_id=r.request_id)) == 3
    r = stop(client, [b, b])
    assert len(tasks_of(client, invoke_id=r.request_id)) == 2
    wait_batch(client, r.request_id)


def test_options_are_kept_in_param(client):
    _, ids = create_group(client, 1, name="life-param")
    r = stop(client, ids, force_stop=True)
    batch = wait_batch(client, r.request_id)
    assert '"ForceStop":true' in batch.param and ids[0] in batch.param
    kid = children(client, batch)[ids[0]]
    assert '"ForceStop":true' in kid.param
    r = reset(client, ids, setting_reset_type=1)
    batch = wait_batch(client, r.request_id)
    assert '"SettingResetType":1' in batch.param


def test_operator_is_the_key_user_and_accounts_are_separate(server, client):
    key = server.create_key("life-ops-" + uuid.uuid4().hex[:6], user="alice")
    alice = server.client(key=key)
    _, ids = create_group(alice, 1, name="alice")
    r = reboot(alice, ids)
    batch = wait_batch(alice, r.request_id)
    assert batch.operator == "alice"
    assert {t.operator for t in tasks_of(alice, invoke_id=r.request_id)} == {"alice"}
    # The root key's tasks carry the root user; neither account sees the other's tasks.
    assert tasks_of(client, invoke_id=r.request_id) == []
    _, mine = create_group(client, 1, name="root-ops")
    r2 = reboot(client, mine)
    assert {t.operator for t in tasks_of(client, invoke_id=r2.request_id)} == {"root"}
    assert tasks_of(alice, invoke_id=r2.request_id) == []
    wait_batch(client, r2.request_id)


# --- in-flight observations, on a server whose operations take long enough to watch ---

@pytest.fixture(scope="module")
def slow(workdir):
    s = Server(workdir / "slow", sim_delay_ms=700).start()
    yield s
    s.stop()


def test_in_flight_states(slow):
    c = slow.client()
    r = c.create_android_instance_group(models.CreateAndroidInstanceGroupRequest(
        biz_region_id="cn-hangzhou", image_id="imgc-simandroid120000",
        instance_group_spec="acp.basic.small", number_of_instances=2, instance_group_name="slow"))
    ids = r.body.instance_group_infos[0].instance_ids
    # New phones go CREATING -> RUNNING.
    assert set(statuses(c, ids)) == {"CREATING"}
    wait_for(lambda: statuses(c, ids) == ["RUNNING", "RUNNING"], what="RUNNING")
    a, b = ids

    first = reboot(c, [a, b])
    second = reboot(c, [a])  # queued behind the first on the same phone
    t0 = time.monotonic()
    b1 = tasks_of(c, invoke_id=first.request_id, level=1)[0]
    b2 = tasks_of(c, invoke_id=second.request_id, level=1)[0]
    assert time.monotonic() - t0 < 0.5, "too slow to observe in-flight states"
    # Not terminal: no FinishTime; running children counted.
    assert b1.task_status in ("Waiting", "Processing")
    assert b1.finish_time in (None, "")
    assert b1.running_child_count == 2 and b1.total_child_count == 2
    assert b2.task_status == "Waiting"
    assert b2.finish_time in (None, "")
    assert (b2.running_child_count, b2.success_child_count, b2.failed_child_count) == (1, 0, 0)
    kid2 = tasks_of(c, invoke_id=second.request_id, level=2)[0]
    assert kid2.task_status == "Waiting" and kid2.finish_time in (None, "")
    # Status filters see in-flight tasks too.
    assert {t.task_id for t in tasks_of(c, task_statuses=["Waiting"], invoke_id=second.request_id)} == \
        {b2.task_id, kid2.task_id}

    wait_for(lambda: tasks_of(c, invoke_id=first.request_id, level=2, task_status="Processing"),
             what="a child Processing")
    b1 = tasks_of(c, invoke_id=first.request_id, level=1)[0]
    assert b1.task_status in ("Processing", "Finished")
    # `a` reboots twice in a row: it is seen REBOOTING, and never in any other status meanwhile.
    wait_for(lambda: statuses(c, [a]) == ["REBOOTING"], what="a REBOOTING")
    assert set(statuses(c, ids)) <= {"REBOOTING", "RUNNING"}

    done1 = wait_batch(c, first.request_id)
    done2 = wait_batch(c, second.request_id)
    assert counters(done1) == ("Finished", 2, 2, 0, 0)
    assert counters(done2) == ("Finished", 1, 1, 0, 0)
    k1 = children(c, done1)[a]
    k2 = children(c, done2)[a]
    # One task at a time per phone, in acceptance order.
    assert k2.finish_time >= k1.finish_time
    assert ISO_RE.match(done2.finish_time) and done2.finish_time >= done2.start_time
    assert statuses(c, ids) == ["RUNNING", "RUNNING"]


def test_tasks_of_one_phone_run_in_acceptance_order(client):
    """Calls made back to back, without waiting: each task starts from the state the previous one
    left, so none is Skipped or fails its precondition."""
    _, ids = create_group(client, 2, name="life-order")
    calls = [stop, start, stop, reset, stop, start, reboot, stop, start]  # reset ends RUNNING
    invokes = [fn(client, ids).request_id for fn in calls]
    for fn, invoke in zip(calls, invokes):
        batch = wait_batch(client, invoke)
        assert counters(batch) == ("Finished", 2, 2, 0, 0), (fn.__name__, counters(batch))
    assert statuses(client, ids) == ["RUNNING", "RUNNING"]
    # Finish times follow the order of acceptance, phone by phone.
    for i in ids:
        kids = tasks_of(client, instance_id=i)
        by_invoke = {k.invoke_id: k for k in kids}
        finishes = [by_invoke[inv].finish_time for inv in invokes]
        assert finishes == sorted(finishes)


def test_concurrent_calls_on_the_same_phones(server, client):
    import threading
    _, ids = create_group(client, 2, name="life-conc")
    invokes, errors = [], []

    def work():
        c = server.client()
        try:
            for _ in range(3):
                invokes.append(reboot(c, ids).request_id)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)
    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(set(invokes)) == 18
    for invoke in invokes:
        batch = wait_batch(client, invoke)
        # One reboot at a time per phone: none ever sees a REBOOTING phone.
        assert counters(batch) == ("Finished", 2, 2, 0, 0)
    assert len(tasks_of(client, resource_ids=ids)) == 36


def test_start_time_is_utc_now(client):
    import datetime
    _, ids = create_group(client, 1, name="life-utc")
    before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    r = reboot(client, ids)
    batch = wait_batch(client, r.request_id)
    after = datetime.datetime.now(datetime.timezone.utc)

    def parse(s):
        return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    for t in tasks_of(client, invoke_id=r.request_id):
        assert before - datetime.timedelta(seconds=1) <= parse(t.start_time) <= after
        assert parse(t.start_time) <= parse(t.finish_time) <= after
    assert batch.finish_time


def test_a_batch_of_1000_phones(workdir):
    s = Server(workdir / "thousand", sim_delay_ms=1).start()
    try:
        c = s.client()
        r = c.create_android_instance_group(models.CreateAndroidInstanceGroupRequest(
            biz_region_id="cn-hangzhou", image_id="imgc-simandroid140000", instance_group_spec="acp.basic.small",
            amount=10, number_of_instances=100)).body
        ids = [i for info in r.instance_group_infos for i in info.instance_ids]
        assert len(set(ids)) == 1000
        wait_for(lambda: c.describe_android_instances(models.DescribeAndroidInstancesRequest(
            status="RUNNING", max_results=1)).body.total_count == 1000, timeout=120, interval=0.2)
        rb = reboot(c, ids)
        assert len(rb.tasks.child_tasks) == 1000
        assert c.describe_tasks(models.DescribeTasksRequest(invoke_id=rb.request_id)).body.total_count == 1001
        batch = wait_batch(c, rb.request_id, timeout=120)
        assert counters(batch) == ("Finished", 1000, 1000, 0, 0)
        assert c.describe_tasks(models.DescribeTasksRequest(
            parent_task_id=batch.task_id, task_status="Finished")).body.total_count == 1000
    finally:
        s.stop()


def test_skipped_children_mixed_with_failed_and_finished(client):
    _, ids = create_group(client, 3, name="life-mix3")
    skip, fail, ok = ids
    wait_batch(client, stop(client, [skip]).request_id)
    try:
        inject_fault(client, fail, "StopInstance", "OperationFailed", "stuck", count=2)
        # Skipped + Failed: nothing finished -> Failed.
        batch = wait_batch(client, stop(client, [skip, fail]).request_id)
        assert counters(batch) == ("Failed", 2, 0, 1, 0)
        kids = children(client, batch)
        assert (kids[skip].task_status, kids[fail].task_status) == ("Skipped", "Failed")
        # Skipped + Failed + Finished -> PartFinished.
        batch = wait_batch(client, stop(client, [skip, fail, ok]).request_id)
        assert counters(batch) == ("PartFinished", 3, 1, 1, 0)
        kids = children(client, batch)
        assert [kids[i].task_status for i in ids] == ["Skipped", "Failed", "Finished"]
    finally:
        clear_faults(client)
    assert statuses(client, ids) == ["STOPPED", "RUNNING", "STOPPED"]
