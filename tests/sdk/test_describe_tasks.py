"""DescribeTasks: every filter alone and combined, pagination, tokens, page sizes and the fields of
each task. The module runs its own server, so the set of tasks is exactly the scenario below and
every expectation can be computed from it."""

import itertools
import threading
import time
import uuid

import pytest
from alibabacloud_eds_aic20230930 import models

from conftest import (ISO_RE, Server, api_error, call, create_group, tasks_of, total_tasks,
                      wait_batch)

TERMINAL = {"Finished", "PartFinished", "Failed", "Skipped"}


@pytest.fixture(scope="module")
def own_server(workdir):
    s = Server(workdir / "describe-tasks").start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def dt_client(own_server):
    return own_server.client()


class Scenario:
    """Three instances and four batches, all terminal:
    1. stop [a1] with ForceStop          -> Finished
    2. reboot [a1, a2, a3] (a1 STOPPED)  -> PartFinished, a1's child Failed (IncorrectInstanceStatus)
    3. start [a1, a2] (a2 is RUNNING)    -> Finished, a2's child Skipped
    4. reset [a3]                        -> Finished
    11 tasks in all, each batch accepted after the previous one finished."""


@pytest.fixture(scope="module")
def sc(dt_client):
    c = dt_client
    s = Scenario()
    s.name = "dt" + uuid.uuid4().hex[:6]
    s.group, s.ids = create_group(c, 3, name=s.name)
    a1, a2, a3 = s.ids
    s.a = {1: a1, 2: a2, 3: a3}
    r = c.stop_android_instance(models.StopAndroidInstanceRequest(android_instance_ids=[a1], force_stop=True))
    s.stop = r.body.request_id
    wait_batch(c, s.stop)
    time.sleep(0.01)
    r = c.reboot_android_instances_in_group(models.RebootAndroidInstancesInGroupRequest(android_instance_ids=[a1, a2, a3]))
    s.reboot = r.body.request_id
    s.reboot_parent = r.body.tasks.parent_task_id
    wait_batch(c, s.reboot)
    time.sleep(0.01)
    r = c.start_android_instance(models.StartAndroidInstanceRequest(android_instance_ids=[a1, a2]))
    s.start = r.body.request_id
    wait_batch(c, s.start)
    time.sleep(0.01)
    r = c.reset_android_instances_in_group(models.ResetAndroidInstancesInGroupRequest(android_instance_ids=[a3]))
    s.reset = r.body.request_id
    wait_batch(c, s.reset)
    s.invokes = [s.stop, s.reboot, s.start, s.reset]
    s.all = tasks_of(c)
    assert len(s.all) == 11, [(t.task_type, t.level) for t in s.all]
    s.by_id = {t.task_id: t for t in s.all}
    return s


def ids_of(tasks):
    return [t.task_id for t in tasks]


def query(c, **filters):
    """(ids, TotalCount) of every page of DescribeTasks with these filters."""
    first = c.describe_tasks(models.DescribeTasksRequest(max_results=100, **filters)).body
    found = tasks_of(c, **filters)
    ids = ids_of(found)
    assert len(ids) == len(set(ids))
    assert first.total_count == len(ids), (filters, first.total_count, len(ids))
    return set(ids)


def expect(sc, pred):
    return {t.task_id for t in sc.all if pred(t)}


# One entry per filter: (request kwargs, predicate over a task) built from the scenario.
def single_filters(sc):
    a1, a2, a3 = sc.ids
    t_any = sc.all[3]
    t_other = sc.all[7]
    return {
        "InvokeId": (dict(invoke_id=sc.reboot), lambda t: t.invoke_id == sc.reboot),
        "ResourceIds": (dict(resource_ids=[a1, a3]), lambda t: t.resource_id in (a1, a3)),
        "TaskIds": (dict(task_ids=[t_any.task_id, t_other.task_id]),
                    lambda t: t.task_id in (t_any.task_id, t_other.task_id)),
        "ParentTaskId": (dict(parent_task_id=sc.reboot_parent), lambda t: t.parent_task_id == sc.reboot_parent),
        "TaskType": (dict(task_type="RebootInstance"), lambda t: t.task_type == "RebootInstance"),
        "TaskTypes": (dict(task_types=["StopInstance", "ResetInstance"]),
                      lambda t: t.task_type in ("StopInstance", "ResetInstance")),
        "TaskStatus": (dict(task_status="Skipped"), lambda t: t.task_status == "Skipped"),
        "TaskStatuses": (dict(task_statuses=["Skipped", "Finished"]),
                         lambda t: t.task_status in ("Skipped", "Finished")),
        "Level": (dict(level=2), lambda t: t.level == 2),
        "InstanceId": (dict(instance_id=a2), lambda t: t.instance_id == a2),
        "InstanceName": (dict(instance_name=f"{sc.name[2:]}-1"),
                         lambda t: (t.instance_name or "").find(f"{sc.name[2:]}-1") >= 0),
        "Param": (dict(param="ForceStop"), lambda t: "ForceStop" in (t.param or "")),
    }


def test_scenario_has_the_expected_shape(sc):
    batches = [t for t in sc.all if t.level == 1]
    children = [t for t in sc.all if t.level == 2]
    assert len(batches) == 4 and len(children) == 7
    assert {t.invoke_id for t in sc.all} == set(sc.invokes)
    statuses = sorted(t.task_status for t in sc.all)
    assert statuses.count("Skipped") == 1 and statuses.count("Failed") == 1
    assert statuses.count("PartFinished") == 1 and statuses.count("Finished") == 8


@pytest.mark.parametrize("name", ["InvokeId", "ResourceIds", "TaskIds", "ParentTaskId", "TaskType", "TaskTypes",
                                  "TaskStatus", "TaskStatuses", "Level", "InstanceId", "InstanceName", "Param"])
def test_each_filter_alone(dt_client, sc, name):
    kwargs, pred = single_filters(sc)[name]
    want = expect(sc, pred)
    # Each filter must actually narrow the listing, and not to nothing.
    assert 0 < len(want) < len(sc.all), (name, len(want))
    assert query(dt_client, **kwargs) == want, name


def test_filters_alone_known_answers(dt_client, sc):
    """The same filters against answers written out by hand, not computed."""
    c = dt_client
    a1, a2, a3 = sc.ids
    assert len(query(c, invoke_id=sc.reboot)) == 4
    assert len(query(c, resource_ids=[a1])) == 3  # stop, reboot and start children
    assert len(query(c, parent_task_id=sc.reboot_parent)) == 3
    assert len(query(c, task_type="StartInstance")) == 3
    assert len(query(c, task_types=["StopInstance", "ResetInstance"])) == 4
    assert len(query(c, level=1)) == 4
    assert len(query(c, level=2)) == 7
    assert len(query(c, instance_id=a3)) == 2  # reboot and reset children
    assert len(query(c, param=a3)) == 2  # the reboot and reset batches name a3 in their Param
    skipped = tasks_of(c, task_status="Skipped")
    assert [(t.instance_id, t.task_type) for t in skipped] == [(a2, "StartInstance")]
    failed = tasks_of(c, task_status="Failed")
    assert [(t.instance_id, t.task_type, t.error_code) for t in failed] == \
        [(a1, "RebootInstance", "IncorrectInstanceStatus")]
    part = tasks_of(c, task_status="PartFinished")
    assert [(t.task_id, t.level) for t in part] == [(sc.reboot_parent, 1)]
    assert query(c, instance_name=sc.name) == expect(sc, lambda t: t.level == 2)


def test_filters_combined_are_anded(dt_client, sc):
    singles = single_filters(sc)
    merged_pairs = {frozenset({"TaskType", "TaskTypes"}), frozenset({"TaskStatus", "TaskStatuses"})}
    checked = 0
    for (n1, (k1, p1)), (n2, (k2, p2)) in itertools.combinations(singles.items(), 2):
        if frozenset({n1, n2}) in merged_pairs:
            continue
        want = expect(sc, lambda t: p1(t) and p2(t))
        assert query(dt_client, **k1, **k2) == want, (n1, n2)
        checked += 1
    assert checked == 64


def test_three_filters_combined(dt_client, sc):
    a1, a2, a3 = sc.ids
    got = query(dt_client, resource_ids=[a1, a2], task_type="StartInstance", task_status="Finished")
    assert got == expect(sc, lambda t: t.instance_id == a1 and t.task_type == "StartInstance")
    assert len(got) == 1
    assert query(dt_client, invoke_id=sc.reboot, task_type="StopInstance") == set()
    r = dt_client.describe_tasks(models.DescribeTasksRequest(invoke_id=sc.reboot, task_type="StopInstance")).body
    assert r.total_count == 0 and r.data == [] and not r.next_token


def test_task_type_and_task_types_merge_into_one_set(dt_client, sc):
    got = query(dt_client, task_type="StartInstance", task_types=["StopInstance"])
    assert got == expect(sc, lambda t: t.task_type in ("StartInstance", "StopInstance"))
    assert len(got) == 5
    # The same value in both is one set, not a double count.
    assert query(dt_client, task_type="StopInstance", task_types=["StopInstance"]) == \
        expect(sc, lambda t: t.task_type == "StopInstance")


def test_task_status_and_task_statuses_merge_into_one_set(dt_client, sc):
    got = query(dt_client, task_status="Skipped", task_statuses=["Finished"])
    assert got == expect(sc, lambda t: t.task_status in ("Skipped", "Finished"))
    assert len(got) == 9
    got = query(dt_client, task_status="Skipped", task_statuses=["Failed", "PartFinished"])
    assert got == expect(sc, lambda t: t.task_status in ("Skipped", "Failed", "PartFinished"))
    assert len(got) == 3
    # A merged set still ANDs with the other filters.
    got = query(dt_client, task_status="Skipped", task_statuses=["Finished"], level=2, invoke_id=sc.start)
    assert len(got) == 2


def test_filter_on_unknown_values_finds_nothing(dt_client, sc):
    c = dt_client
    assert query(c, invoke_id="no-such-invoke") == set()
    assert query(c, task_ids=["t-0000000000000000"]) == set()
    assert query(c, instance_id="acp-0000000000000000") == set()
    assert query(c, task_status="Waiting") == set()
    assert query(c, task_statuses=["Processing", "Waiting"]) == set()
    assert query(c, instance_name="no-such-name") == set()


def test_param_filter_is_a_substring_and_handles_special_characters(dt_client, sc):
    # The child of the stop carries {"ForceStop":true}; a piece from the middle of it matches.
    got = query(dt_client, param='"ForceStop":tr')
    assert got == expect(sc, lambda t: '"ForceStop":tr' in t.param)
    assert len(got) == 2
    # LIKE wildcards are plain characters here.
    assert query(dt_client, param="%") == set()
    assert query(dt_client, param="_") == set()
    assert query(dt_client, instance_name="%") == set()


def test_fields_of_every_task(dt_client, sc):
    batch_of = {t.invoke_id: t for t in sc.all if t.level == 1}
    for t in sc.all:
        assert t.region_id == "cn-hangzhou"
        assert t.operator == "root"
        assert t.invoke_id in sc.invokes
        assert ISO_RE.match(t.start_time), t.start_time
        assert t.task_status in TERMINAL
        assert ISO_RE.match(t.finish_time), t.finish_time
        assert t.finish_time >= t.start_time
        assert t.task_id.startswith("t-") and len(t.task_id) == 18
        if t.level == 1:
            assert t.parent_task_id in (None, "")
            assert not t.instance_id
            assert t.total_child_count == len([x for x in sc.all if x.parent_task_id == t.task_id])
            assert t.running_child_count == 0
        else:
            assert t.parent_task_id == batch_of[t.invoke_id].task_id
            assert t.resource_id == t.instance_id
            assert t.instance_name.startswith(sc.name + "-")
            assert t.start_time == batch_of[t.invoke_id].start_time
    def counters(b):
        return (b.task_status, b.total_child_count, b.success_child_count, b.failed_child_count,
                b.running_child_count)
    assert counters(batch_of[sc.start]) == ("Finished", 2, 1, 0, 0)
    assert counters(batch_of[sc.reboot]) == ("PartFinished", 3, 2, 1, 0)
    assert counters(batch_of[sc.stop]) == ("Finished", 1, 1, 0, 0)
    assert counters(batch_of[sc.reset]) == ("Finished", 1, 1, 0, 0)
    for t in sc.all:
        if t.task_status == "Failed":
            assert t.error_code == "IncorrectInstanceStatus" and t.error_msg
        else:
            assert not t.error_code and not t.error_msg
        if t.task_status == "Finished" and t.level == 2:
            assert t.result == '{"Success":true}'
    # InstanceStatus is the instance's status now, not when the task ran.
    a1 = sc.a[1]
    stop_child = [t for t in sc.all if t.invoke_id == sc.stop and t.level == 2][0]
    assert stop_child.instance_id == a1 and stop_child.instance_status == "RUNNING"


# --- pagination ---

def walk(c, max_results=1, per_page=None, **filters):
    """Every page of a listing; returns (pages, first TotalCount)."""
    pages, token, total = [], None, None
    while True:
        r = c.describe_tasks(models.DescribeTasksRequest(max_results=max_results, next_token=token, **filters)).body
        if total is None:
            total = r.total_count
        pages.append(r.data)
        if per_page:
            per_page(len(pages))
        token = r.next_token
        if not token:
            return pages, total
        assert len(pages) < 1000, "pagination does not end"


def assert_newest_first(sc, tasks):
    order = [t.invoke_id for t in tasks]
    # The batches' accept times are in call order, so the invokes appear newest call first.
    firsts = list(dict.fromkeys(order))
    expected = [i for i in reversed(sc.invokes) if i in firsts]
    assert firsts == expected
    # A call's tasks share one accept time; they come by TaskId, descending, and are contiguous.
    for invoke in firsts:
        idx = [i for i, x in enumerate(order) if x == invoke]
        assert idx == list(range(idx[0], idx[-1] + 1))
        ids = [tasks[i].task_id for i in idx]
        assert ids == sorted(ids, reverse=True)
    starts = [t.start_time for t in tasks]
    assert starts == sorted(starts, reverse=True)


def test_walk_with_max_results_1(dt_client, sc):
    pages, total = walk(dt_client)
    assert total == 11
    assert len(pages) == total
    assert all(len(p) == 1 for p in pages)
    seen = [p[0] for p in pages]
    assert len({t.task_id for t in seen}) == total
    assert {t.task_id for t in seen} == set(sc.by_id)
    assert_newest_first(sc, seen)
    # The same order as one big page.
    assert ids_of(seen) == ids_of(dt_client.describe_tasks(models.DescribeTasksRequest(max_results=100)).body.data)


def test_walk_with_max_results_1_and_filters(dt_client, sc):
    pages, total = walk(dt_client, level=2, task_types=["StartInstance", "RebootInstance", "ResetInstance"])
    want = expect(sc, lambda t: t.level == 2 and t.task_type != "StopInstance")
    assert total == len(want) == len(pages) == 6
    seen = [p[0] for p in pages]
    assert [t.task_id for t in seen if t.task_id in want] == ids_of(seen)
    assert set(ids_of(seen)) == want
    assert_newest_first(sc, seen)


def test_walk_with_max_results_3(dt_client, sc):
    pages, total = walk(dt_client, max_results=3)
    assert [len(p) for p in pages] == [3, 3, 3, 2]
    seen = [t for p in pages for t in p]
    assert set(ids_of(seen)) == set(sc.by_id) and len(seen) == 11
    assert_newest_first(sc, seen)


def test_max_results_default_is_10(dt_client, sc):
    r = dt_client.describe_tasks(models.DescribeTasksRequest()).body
    assert r.total_count == 11
    assert len(r.data) == 10
    assert r.next_token
    rest = dt_client.describe_tasks(models.DescribeTasksRequest(next_token=r.next_token)).body
    assert len(rest.data) == 1 and not rest.next_token
    assert set(ids_of(r.data + rest.data)) == set(sc.by_id)


@pytest.mark.parametrize("n,pages", [(1, 11), (100, 1), (11, 1), (10, 2)])
def test_max_results_accepted(dt_client, sc, n, pages):
    got, total = walk(dt_client, max_results=n)
    assert len(got) == pages and total == 11
    assert len(got[0]) == min(n, 11)


@pytest.mark.parametrize("bad", ["0", "101", "-1", "abc", "1.5", "1e1", " 5", "+5", "99999999999999999999"])
def test_max_results_out_of_bounds_or_malformed(dt_client, sc, bad):
    e = api_error(call, dt_client, "DescribeTasks", {"MaxResults": bad})
    assert e.code == "InvalidParameter.MaxResults"
    assert e.status_code == 400


def test_max_results_bounds_through_the_sdk(dt_client, sc):
    for bad in (0, 101):
        e = api_error(dt_client.describe_tasks, models.DescribeTasksRequest(max_results=bad))
        assert (e.status_code, e.code) == (400, "InvalidParameter.MaxResults")


def test_last_page_has_no_token(dt_client, sc):
    r = dt_client.describe_tasks(models.DescribeTasksRequest(max_results=11)).body
    assert len(r.data) == 11 and not r.next_token


# --- tokens ---

def first_token(c, **filters):
    r = c.describe_tasks(models.DescribeTasksRequest(max_results=2, **filters)).body
    assert r.next_token
    return r.next_token


def test_tampered_token_is_rejected(dt_client, sc):
    token = first_token(dt_client)
    variants = {
        token[:-1] + ("A" if token[-1] != "A" else "B"),
        ("A" if token[0] != "A" else "B") + token[1:],
        token[: len(token) // 2] + ("x" if token[len(token) // 2] != "x" else "y") + token[len(token) // 2 + 1:],
        token[:-2],
        token + "A",
        "garbage",
        "0",
    }
    for bad in variants:
        e = api_error(dt_client.describe_tasks, models.DescribeTasksRequest(max_results=2, next_token=bad))
        assert (e.status_code, e.code) == (400, "InvalidParameter.NextToken"), bad
    # The genuine token still works.
    r = dt_client.describe_tasks(models.DescribeTasksRequest(max_results=2, next_token=token)).body
    assert len(r.data) == 2


@pytest.mark.parametrize("issued,reused", [
    (dict(level=2), dict(level=1)),
    (dict(level=2), dict()),
    (dict(), dict(level=2)),
    (dict(task_type="RebootInstance"), dict(task_type="StartInstance")),
    (dict(task_statuses=["Finished"]), dict(task_statuses=["Finished", "Skipped"])),
    (dict(instance_name="dt"), dict(instance_name="d")),
])
def test_token_reused_with_other_filters_is_rejected(dt_client, sc, issued, reused):
    token = first_token(dt_client, **issued)
    e = api_error(dt_client.describe_tasks, models.DescribeTasksRequest(max_results=2, next_token=token, **reused))
    assert (e.status_code, e.code) == (400, "InvalidParameter.NextToken")


def test_token_with_the_same_filters_and_another_page_size_continues(dt_client, sc):
    r = dt_client.describe_tasks(models.DescribeTasksRequest(max_results=2, level=2)).body
    rest, token = [], r.next_token
    while token:
        page = dt_client.describe_tasks(models.DescribeTasksRequest(max_results=4, next_token=token, level=2)).body
        rest += page.data
        token = page.next_token
    got = ids_of(r.data) + ids_of(rest)
    assert len(got) == len(set(got)) == 7
    assert set(got) == expect(sc, lambda t: t.level == 2)


def test_token_of_another_listing_or_account_is_rejected(own_server, dt_client, sc):
    r = dt_client.describe_android_instances(models.DescribeAndroidInstancesRequest(max_results=1)).body
    assert r.next_token
    e = api_error(dt_client.describe_tasks, models.DescribeTasksRequest(next_token=r.next_token))
    assert e.code == "InvalidParameter.NextToken"
    other = own_server.client(key=own_server.create_key("dt-other"))
    token = first_token(dt_client)
    e = api_error(other.describe_tasks, models.DescribeTasksRequest(max_results=2, next_token=token))
    assert e.code == "InvalidParameter.NextToken"
    # And the other account sees none of these tasks.
    assert other.describe_tasks(models.DescribeTasksRequest()).body.total_count == 0
    assert total_tasks(other, invoke_id=sc.reboot) == 0


# --- validation of the filters ---

@pytest.mark.parametrize("query,code", [
    ({"TaskType": "Bogus"}, "InvalidParameter.TaskType"),
    ({"TaskType": "startinstance"}, "InvalidParameter.TaskType"),
    ({"TaskType": "CreateInstance"}, "InvalidParameter.TaskType"),  # internal, not one of the 16
    ({"TaskTypes.1": "StartInstance", "TaskTypes.2": "Nope"}, "InvalidParameter.TaskTypes"),
    ({"TaskStatus": "Done"}, "InvalidParameter.TaskStatus"),
    ({"TaskStatuses.1": "Finished", "TaskStatuses.2": "Running"}, "InvalidParameter.TaskStatuses"),
    ({"Level": "3"}, "InvalidParameter.Level"),
    ({"Level": "0"}, "InvalidParameter.Level"),
    ({"Level": "-1"}, "InvalidParameter.Level"),
    ({"Level": "one"}, "InvalidParameter.Level"),
    ({"Level": "1.0"}, "InvalidParameter.Level"),
    ({"TaskIds.1": "t-1", "TaskIds.3": "t-3"}, "InvalidParameter.TaskIds"),
    ({"ResourceIds.2": "acp-1"}, "InvalidParameter.ResourceIds"),
    ({"ResourceIds.0": "acp-1"}, "InvalidParameter.ResourceIds"),
    ({"ResourceIds.01": "acp-1"}, "InvalidParameter.ResourceIds"),
    ({"ResourceIds.x": "acp-1"}, "InvalidParameter.ResourceIds"),
    ({"ResourceIds": "acp-1"}, "InvalidParameter.ResourceIds"),
    ({"TaskStatuses.1": "Finished", "TaskStatuses.3": "Failed"}, "InvalidParameter.TaskStatuses"),
    ({"TaskTypes.2": "StartInstance"}, "InvalidParameter.TaskTypes"),
])
def test_invalid_filters(dt_client, sc, query, code):
    e = api_error(call, dt_client, "DescribeTasks", query)
    assert (e.status_code, e.code) == (400, code)


def test_invalid_filters_through_the_sdk_models(dt_client, sc):
    cases = [
        (models.DescribeTasksRequest(task_type="Bogus"), "InvalidParameter.TaskType"),
        (models.DescribeTasksRequest(task_types=["RebootInstance", "Reboot"]), "InvalidParameter.TaskTypes"),
        (models.DescribeTasksRequest(task_status="Done"), "InvalidParameter.TaskStatus"),
        (models.DescribeTasksRequest(task_statuses=["Waiting", "Cancelled"]), "InvalidParameter.TaskStatuses"),
        (models.DescribeTasksRequest(level=3), "InvalidParameter.Level"),
    ]
    for request, code in cases:
        e = api_error(dt_client.describe_tasks, request)
        assert (e.status_code, e.code) == (400, code)
        assert e.message


def test_every_valid_enum_value_is_accepted(dt_client, sc):
    types = ["BackupFile", "StopInstance", "RebootInstance", "StartApp", "SendFile", "RunCommand", "RestartApp",
             "ResetInstance", "RecoverFile", "UninstallApp", "StopApp", "Screenshot", "InstallApp", "FetchFile",
             "UpdateGroupImage", "StartInstance"]
    statuses = ["PartFinished", "Finished", "Failed", "Skipped", "Processing", "Waiting"]
    for t in types:
        dt_client.describe_tasks(models.DescribeTasksRequest(task_type=t))
    for s in statuses:
        dt_client.describe_tasks(models.DescribeTasksRequest(task_status=s))
    assert query(dt_client, task_types=types) == set(sc.by_id)
    assert query(dt_client, task_statuses=statuses) == set(sc.by_id)


def test_list_filters_accept_100_items_and_refuse_far_more(dt_client, sc):
    many = [f"t-{i:016d}" for i in range(99)] + [sc.all[0].task_id]
    assert query(dt_client, task_ids=many) == {sc.all[0].task_id}
    e = api_error(dt_client.describe_tasks, models.DescribeTasksRequest(
        resource_ids=[f"acp-{i:016d}" for i in range(1001)]))
    assert (e.status_code, e.code) == (400, "InvalidParameter.ResourceIds")


# --- pagination while tasks are being added (on the shared server, with its own instances) ---

def test_walk_while_tasks_are_added(server, client):
    _, ids = create_group(client, 2, name="walk" + uuid.uuid4().hex[:6])
    before = set()
    for _ in range(5):
        r = client.reboot_android_instances_in_group(models.RebootAndroidInstancesInGroupRequest(android_instance_ids=ids))
        before |= {c.task_id for c in r.body.tasks.child_tasks}
        before.add(r.body.tasks.parent_task_id)
    # Batches name the instances in their Param; children carry them as ResourceId.
    want = set(ids_of(tasks_of(client, param=ids[0]))) | set(ids_of(tasks_of(client, resource_ids=ids)))
    assert want == before and len(want) == 15

    stop = threading.Event()
    added, errors = [], []

    adder_client = server.client()

    def add():
        try:
            while not stop.is_set() and len(added) < 40:
                adder_client.reboot_android_instances_in_group(
                    models.RebootAndroidInstancesInGroupRequest(android_instance_ids=ids))
                added.append(time.monotonic())
                time.sleep(0.005)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    seen_children, seen_batches = [], []
    adder = threading.Thread(target=add)
    adder.start()
    try:
        walk_start = time.monotonic()
        for filters, out in ((dict(resource_ids=ids), seen_children), (dict(param=ids[0]), seen_batches)):
            pages, _ = walk(client, per_page=lambda n: time.sleep(0.01), **filters)
            for p in pages:
                assert len(p) <= 1
                out += p
        walk_end = time.monotonic()
    finally:
        stop.set()
        adder.join()
    assert not errors, errors
    during = [t for t in added if walk_start < t < walk_end]
    assert len(during) >= 5, "tasks were not added while walking"
    for seen in (seen_children, seen_batches):
        got = ids_of(seen)
        assert len(got) == len(set(got)), "a task was seen twice"
        starts = [t.start_time for t in seen]
        assert starts == sorted(starts, reverse=True)
    got = set(ids_of(seen_children)) | set(ids_of(seen_batches))
    assert before <= got, f"missed {before - got}"


TASK_FIELDS = {
    "ErrorCode": str, "ErrorMsg": str, "FailedChildCount": int, "FinishTime": str, "InstanceId": str,
    "InstanceName": str, "InstanceStatus": str, "InvokeId": str, "Level": int, "Operator": str, "Param": str,
    "ParentTaskId": str, "RegionId": str, "ResourceId": str, "Result": str, "RunningChildCount": int,
    "StartTime": str, "SuccessChildCount": int, "TaskId": str, "TaskStatus": str, "TaskType": str,
    "TotalChildCount": int,
}


def test_raw_response_fields_and_types(dt_client, sc):
    body = call(dt_client, "DescribeTasks", {"MaxResults": 2})
    assert set(body) == {"RequestId", "TotalCount", "Data", "NextToken"}
    assert isinstance(body["TotalCount"], int) and body["TotalCount"] == 11
    assert isinstance(body["NextToken"], str) and body["NextToken"]
    body = call(dt_client, "DescribeTasks", {"MaxResults": 100})
    assert "NextToken" not in body or body["NextToken"] == ""
    for t in body["Data"]:
        assert set(t) <= set(TASK_FIELDS), set(t) - set(TASK_FIELDS)
        for k, v in t.items():
            assert isinstance(v, TASK_FIELDS[k]) and not isinstance(v, bool), (k, v)
        always = {"TaskId", "InvokeId", "TaskType", "TaskStatus", "Level", "StartTime", "RegionId", "Operator",
                  "Param", "ResourceId", "FinishTime"}
        assert always <= set(t), always - set(t)
        if t["Level"] == 1:
            assert {"TotalChildCount", "SuccessChildCount", "FailedChildCount", "RunningChildCount"} <= set(t)
        else:
            assert {"ParentTaskId", "InstanceId", "InstanceName", "InstanceStatus"} <= set(t)
