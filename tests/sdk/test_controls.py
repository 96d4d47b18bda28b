"""Issue 10's extensions through the SDK's generic call path, as a user calls them: ClientToken
idempotency, DryRun, MaxConcurrency and MaxErrors, CancelTasks and RetryTasks. One server of
its own: a short lease (heartbeats every 200 ms, so a cancelled command stops within a beat)."""

import json
import time

import pytest
from alibabacloud_eds_aic20230930 import models

from conftest import (Server, api_error, call, clear_faults, create_group, inject_fault,
                      instance_status, tasks_of, total_tasks, wait_batch, wait_for)


@pytest.fixture(scope="module")
def client(workdir):
    s = Server(workdir / "controls", sim_delay_ms=100, extra_args=["--lease-ms", "600"]).start()
    yield s.client()
    s.stop()


def total_creating(client):
    return client.describe_android_instances(models.DescribeAndroidInstancesRequest(
        status="CREATING", max_results=1)).body.total_count


def ids_query(ids, name="AndroidInstanceIds"):
    return {f"{name}.{n + 1}": i for n, i in enumerate(ids)}


def reboot(client, ids, **extra):
    return call(client, "RebootAndroidInstancesInGroup", {**ids_query(ids), **extra})


def batch_of(client, task_id):
    (b,) = tasks_of(client, task_ids=[task_id], level=1)
    return b


def children(client, batch_id):
    return tasks_of(client, parent_task_id=batch_id)


def counters(b):
    """(total, finished, failed, skipped, running); the vendor's fields have no skipped count:
    it is what the others leave."""
    skipped = b.total_child_count - b.success_child_count - b.failed_child_count - b.running_child_count
    return (b.total_child_count, b.success_child_count, b.failed_child_count, skipped,
            b.running_child_count)


def assert_counters_match_children(client, b):
    """The batch's counters are exactly what its children say."""
    kids = children(client, b.task_id)
    by = {s: sum(1 for k in kids if k.task_status == s) for s in ("Finished", "Failed", "Skipped")}
    running = sum(1 for k in kids if k.task_status in ("Waiting", "Processing"))
    assert counters(b) == (len(kids), by["Finished"], by["Failed"], by["Skipped"], running)
    return kids


# --- ClientToken --------------------------------------------------------------------------


def test_a_repeated_client_token_answers_the_first_call_and_creates_nothing(client):
    _, ids = create_group(client, 3, name="idem")
    first = reboot(client, ids, ClientToken="reboot-once")
    before = total_tasks(client)
    again = reboot(client, ids, ClientToken="reboot-once")
    assert again == first, "the same RequestId and task ids as the first answer"
    assert total_tasks(client) == before
    assert len(tasks_of(client, invoke_id=first["RequestId"])) == 4
    wait_batch(client, first["RequestId"])
    # After the batch ended, a repeat still answers the same and starts nothing.
    assert reboot(client, ids, ClientToken="reboot-once") == first
    assert total_tasks(client) == before

    e = api_error(reboot, client, ids[:2], ClientToken="reboot-once")
    assert (e.status_code, e.code) == (400, "IdempotentParameterMismatch")
    assert total_tasks(client) == before
    # Another action under the same token is other parameters too.
    e = api_error(call, client, "StopAndroidInstance", {**ids_query(ids), "ClientToken": "reboot-once"})
    assert e.code == "IdempotentParameterMismatch"
    assert total_tasks(client) == before


def test_a_call_that_fails_frees_its_client_token(client):
    _, ids = create_group(client, 1, name="idem-fail")
    e = api_error(reboot, client, ["acp-nosuchphone"], ClientToken="retry-me")
    assert e.code == "InvalidAndroidInstanceIds.NotFound"
    ok = reboot(client, ids, ClientToken="retry-me")
    assert ok["Tasks"]["ParentTaskId"]
    assert reboot(client, ids, ClientToken="retry-me") == ok


def test_a_client_token_has_at_most_100_characters(client):
    _, ids = create_group(client, 1, name="idem-long")
    e = api_error(reboot, client, ids, ClientToken="x" * 101)
    assert e.code == "InvalidParameter.ClientToken"


# --- DryRun -------------------------------------------------------------------------------


def test_a_dry_run_reports_each_child_and_creates_nothing(client):
    _, ids = create_group(client, 3, name="dry")
    stop = call(client, "StopAndroidInstance", ids_query(ids[1:]))
    wait_batch(client, stop["RequestId"])
    before = total_tasks(client)
    e = api_error(call, client, "StartAndroidInstance", {**ids_query(ids), "DryRun": "true"})
    assert (e.status_code, e.code) == (400, "DryRunOperation")
    report = e.data["DryRunReport"]
    assert [(i["InstanceId"], i["InstanceStatus"], i["Outcome"]) for i in report["Instances"]] == [
        (ids[0], "RUNNING", "Skip"), (ids[1], "STOPPED", "Run"), (ids[2], "STOPPED", "Run")]
    assert (report["TotalCount"], report["RunCount"], report["SkipCount"], report["FailCount"]) == (3, 2, 1, 0)

    e = api_error(reboot, client, ids, DryRun="true", MaxConcurrency="50%", MaxErrors="1")
    report = e.data["DryRunReport"]
    assert [i["Outcome"] for i in report["Instances"]] == ["Run", "Fail", "Fail"]
    assert (report["MaxConcurrency"], report["MaxErrors"]) == (2, 1)
    assert total_tasks(client) == before
    assert [instance_status(client, i) for i in ids] == ["RUNNING", "STOPPED", "STOPPED"]
    # A dry run still checks everything a real call would.
    e = api_error(reboot, client, ["acp-nosuchphone"], DryRun="true")
    assert e.code == "InvalidAndroidInstanceIds.NotFound"
    # An action that cannot dry-run refuses rather than act.
    e = api_error(call, client, "CreateAndroidInstanceGroup", {
        "BizRegionId": "cn-hangzhou", "ImageId": "imgc-simandroid140000",
        "InstanceGroupSpec": "acp.basic.small", "NumberOfInstances": 1, "DryRun": "true"})
    assert e.code == "InvalidParameter.DryRun"
    assert total_tasks(client) == before


# --- MaxConcurrency and MaxErrors ---------------------------------------------------------


def test_max_concurrency_bounds_the_children_running_at_once(client):
    _, ids = create_group(client, 12, name="slow-roll")
    r = call(client, "RunCommand", {**ids_query(ids, "InstanceIds"), "CommandContent": "sleep 0.3",
                                    "MaxConcurrency": "25%"})
    most = 0
    while True:
        b = batch_of(client, r["TaskId"])
        running = sum(1 for k in children(client, b.task_id) if k.task_status == "Processing")
        most = max(most, running)
        assert running <= 3, "25% of 12"
        if b.task_status not in ("Waiting", "Processing"):
            break
        time.sleep(0.05)
    assert b.task_status == "Finished" and b.success_child_count == 12
    assert most >= 2, "the limit was reached, not merely respected by a slow engine"


def test_max_errors_stops_the_batch_where_injected_faults_start(client):
    _, ids = create_group(client, 20, name="canary")
    for i in ids[10:]:
        inject_fault(client, i, "RebootInstance", error_code="OperationFailed")
    try:
        r = reboot(client, ids, MaxConcurrency="1", MaxErrors="0")
        b = wait_batch(client, r["RequestId"])
    finally:
        clear_faults(client)
    assert b.task_status == "PartFinished"
    assert counters(b) == (20, 10, 1, 9, 0)
    kids = {k.instance_id: k for k in assert_counters_match_children(client, b)}
    assert all(kids[i].task_status == "Finished" for i in ids[:10])
    assert (kids[ids[10]].task_status, kids[ids[10]].error_code) == ("Failed", "OperationFailed")
    assert {(kids[i].task_status, kids[i].error_code) for i in ids[11:]} == {("Skipped", "MaxErrorsExceeded")}
    # The phones never touched stayed as they were.
    assert all(instance_status(client, i) == "RUNNING" for i in ids[11:])


def test_rate_controls_are_checked(client):
    _, ids = create_group(client, 1, name="bad-rate")
    for name, bad in [("MaxConcurrency", "0"), ("MaxConcurrency", "-1"), ("MaxErrors", "150%"), ("MaxErrors", "two")]:
        e = api_error(reboot, client, ids, **{name: bad})
        assert e.code == f"InvalidParameter.{name}", (name, bad)


# --- CancelTasks --------------------------------------------------------------------------


def test_cancel_in_the_middle_of_a_500_child_batch_gives_exact_counters(client):
    r = client.create_android_instance_group(models.CreateAndroidInstanceGroupRequest(
        biz_region_id="cn-hangzhou", image_id="imgc-simandroid140000", instance_group_spec="acp.basic.small",
        amount=5, number_of_instances=100, instance_group_name="big")).body
    ids = [i for g in r.instance_group_infos for i in g.instance_ids]
    assert len(ids) == 500
    wait_for(lambda: all(m.android_instance_status == "RUNNING" for m in client.describe_android_instances(
        models.DescribeAndroidInstancesRequest(instance_group_ids=r.instance_group_ids, max_results=100)).body.instance_model)
        and total_creating(client) == 0, timeout=120, what="500 phones RUNNING")
    rb = reboot(client, ids, MaxConcurrency="10")
    batch_id = rb["Tasks"]["ParentTaskId"]
    wait_for(lambda: batch_of(client, batch_id).success_child_count >= 30, timeout=60)
    out = call(client, "CancelTasks", {"TaskIds.1": batch_id})
    # Reboots cannot be cut: those running finish; the rest never start.
    assert out["InterruptingCount"] == 0
    assert 1 <= out["FinishingCount"] <= 10
    assert out["SkippedCount"] + out["FinishingCount"] + out["EndedCount"] == 500
    b = wait_batch(client, rb["RequestId"])
    assert b.task_status == "Finished"
    assert counters(b) == (500, 500 - out["SkippedCount"], 0, out["SkippedCount"], 0)
    kids = assert_counters_match_children(client, b)
    assert {k.error_code for k in kids if k.task_status == "Skipped"} == {"Cancelled"}
    # A second cancel changes nothing.
    again = call(client, "CancelTasks", {"TaskIds.1": batch_id})
    assert (again["SkippedCount"], again["EndedCount"]) == (0, 500)
    assert counters(batch_of(client, batch_id)) == counters(b)


def test_cancel_stops_a_running_command(client):
    _, ids = create_group(client, 3, name="long-cmd")
    r = call(client, "RunCommand", {**ids_query(ids, "InstanceIds"), "CommandContent": "sleep 60"})
    b = batch_of(client, r["TaskId"])
    wait_for(lambda: batch_of(client, b.task_id).running_child_count == 3
             and all(k.task_status == "Processing" for k in children(client, b.task_id)))
    out = call(client, "CancelTasks", {"TaskIds.1": b.task_id})
    assert (out["InterruptingCount"], out["SkippedCount"]) == (3, 0)
    # Far sooner than the 60 s the commands would take.
    b = wait_batch(client, r["InvokeId"], timeout=20)
    assert b.task_status == "Failed" and b.failed_child_count == 3
    assert {k.error_code for k in children(client, b.task_id)} == {"Cancelled"}
    # The phones are free for their next task.
    r = call(client, "RunCommand", {**ids_query(ids[:1], "InstanceIds"), "CommandContent": "echo after"})
    assert wait_batch(client, r["InvokeId"]).task_status == "Finished"


def test_a_cancel_reaches_a_command_on_its_node_before_the_next_heartbeat(workdir):
    # Heartbeats every 20 s here: the cancel must not wait for one.
    s = Server(workdir / "controls-long-lease", sim_delay_ms=50, extra_args=["--lease-ms", "60000"]).start()
    try:
        c = s.client()
        _, ids = create_group(c, 2, name="bell")
        r = call(c, "RunCommand", {**ids_query(ids, "InstanceIds"), "CommandContent": "sleep 60"})
        wait_for(lambda: batch_of(c, r["TaskId"]).running_child_count == 2
                 and all(k.task_status == "Processing" for k in children(c, r["TaskId"])))
        out = call(c, "CancelTasks", {"TaskIds.1": r["TaskId"]})
        assert out["InterruptingCount"] == 2
        b = wait_batch(c, r["InvokeId"], timeout=10)
        assert (b.task_status, b.failed_child_count) == ("Failed", 2)
        assert {k.error_code for k in children(c, b.task_id)} == {"Cancelled"}
    finally:
        s.stop()


def test_cancel_of_one_child_and_of_unknown_ids(client):
    _, ids = create_group(client, 2, name="one-child")
    r = reboot(client, ids, MaxConcurrency="1")
    second = r["Tasks"]["ChildTasks"][1]["TaskId"]
    out = call(client, "CancelTasks", {"TaskIds.1": second})
    assert out["SkippedCount"] + out["FinishingCount"] + out["EndedCount"] == 1
    b = wait_batch(client, r["RequestId"])
    assert b.success_child_count >= 1
    e = api_error(call, client, "CancelTasks", {"TaskIds.1": second, "TaskIds.2": "t-nosuchtask"})
    assert (e.status_code, e.code) == (404, "InvalidTaskIds.NotFound")
    e = api_error(call, client, "CancelTasks", {})
    assert e.code == "MissingParameter.TaskIds"


# --- RetryTasks ---------------------------------------------------------------------------


def test_retry_of_a_part_finished_batch_touches_only_the_failed(client):
    _, ids = create_group(client, 6, name="retry")
    for i in ids[1:3]:
        inject_fault(client, i, "RebootInstance", error_code="OperationFailed", count=1)
    try:
        r = reboot(client, ids)
        b = wait_batch(client, r["RequestId"])
    finally:
        clear_faults(client)
    assert (b.task_status, b.failed_child_count) == ("PartFinished", 2)
    before = {i: total_tasks(client, instance_id=i) for i in ids}
    retried = call(client, "RetryTasks", {"TaskId": b.task_id})
    assert retried["RetryOf"] == b.task_id
    assert [c["InstanceId"] for c in retried["ChildTasks"]] == ids[1:3]
    nb = wait_batch(client, retried["RequestId"])
    assert (nb.task_type, nb.task_status, nb.total_child_count) == ("RebootInstance", "Finished", 2)
    assert json.loads(nb.param)["RetryOf"] == b.task_id
    after = {i: total_tasks(client, instance_id=i) for i in ids}
    assert after == {i: before[i] + (1 if i in ids[1:3] else 0) for i in ids}
    # Nothing failed now: the new batch has nothing to retry.
    e = api_error(call, client, "RetryTasks", {"TaskId": nb.task_id})
    assert (e.status_code, e.code) == (409, "IncorrectStatus")


def test_retry_with_skipped_and_its_refusals(client):
    _, ids = create_group(client, 3, name="retry-skip")
    inject_fault(client, ids[0], "RebootInstance", error_code="OperationFailed", count=1)
    try:
        r = reboot(client, ids, MaxConcurrency="1", MaxErrors="0")
        b = wait_batch(client, r["RequestId"])
    finally:
        clear_faults(client)
    assert counters(b)[2:4] == (1, 2)
    only_failed = call(client, "RetryTasks", {"TaskId": b.task_id, "DryRun": "false"})
    assert [c["InstanceId"] for c in only_failed["ChildTasks"]] == ids[:1]
    wait_batch(client, only_failed["RequestId"])
    everything = call(client, "RetryTasks", {"TaskId": b.task_id, "IncludeSkipped": "true",
                                             "ClientToken": "retry-all"})
    assert [c["InstanceId"] for c in everything["ChildTasks"]] == ids
    assert call(client, "RetryTasks", {"TaskId": b.task_id, "IncludeSkipped": "true",
                                       "ClientToken": "retry-all"}) == everything
    wait_batch(client, everything["RequestId"])

    slow = call(client, "RunCommand", {**ids_query(ids, "InstanceIds"), "CommandContent": "sleep 30"})
    (running,) = tasks_of(client, invoke_id=slow["InvokeId"], level=1)
    e = api_error(call, client, "RetryTasks", {"TaskId": running.task_id})
    assert (e.status_code, e.code) == (409, "IncorrectStatus")
    call(client, "CancelTasks", {"TaskIds.1": running.task_id})
    e = api_error(call, client, "RetryTasks", {"TaskId": "t-nosuchtask"})
    assert (e.status_code, e.code) == (404, "InvalidTaskId.NotFound")
    child = tasks_of(client, parent_task_id=b.task_id)[0]
    e = api_error(call, client, "RetryTasks", {"TaskId": child.task_id})
    assert e.code == "InvalidTaskId.NotFound", "an instance task is no batch"
