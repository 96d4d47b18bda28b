"""Bad input: malformed numbers, unknown enum values, missing required fields, lists with holes,
too many ids, oversize requests, invalid UTF-8, non-existent and foreign ids. Each gets a 4xx
JSON error whose code names the parameter, and a rejected call creates nothing."""

import uuid

import pytest
import requests
from alibabacloud_eds_aic20230930 import models

from conftest import (API_VERSION, api_error, call, create_group, error_code, new_nonce, raw_post, signed_request,
                      tasks_of, total_tasks, wait_batch)

LIFECYCLE = ["StartAndroidInstance", "StopAndroidInstance", "RebootAndroidInstancesInGroup",
             "ResetAndroidInstancesInGroup"]
UNKNOWN = "acp-0000000000000000"


@pytest.fixture(scope="module")
def phones(client):
    """Two RUNNING phones of the root account, the targets of the rejected calls."""
    return create_group(client, 2, name="bad-input")[1]


@pytest.fixture(scope="module")
def foreign(server):
    """A phone of another account."""
    other = server.client(key=server.create_key("bad-other-" + uuid.uuid4().hex[:6]))
    return create_group(other, 1, name="foreign")[1][0]


def snapshot(client, phones):
    """What a rejected call must leave unchanged: the account's task count and each phone's tasks."""
    return total_tasks(client), {p: len(tasks_of(client, instance_id=p)) for p in phones}


def assert_nothing_created(client, phones, before):
    assert snapshot(client, phones) == before


def ids_query(*ids, name="AndroidInstanceIds"):
    return {f"{name}.{n}": i for n, i in enumerate(ids, 1)}


# --- lifecycle calls ---

@pytest.mark.parametrize("action", LIFECYCLE)
def test_missing_ids(client, phones, action):
    before = snapshot(client, phones)
    e = api_error(call, client, action, {})
    assert (e.status_code, e.code) == (400, "MissingParameter.AndroidInstanceIds")
    e = api_error(call, client, action, {"AndroidInstanceIds.1": ""})
    assert (e.status_code, e.code) == (400, "InvalidParameter.AndroidInstanceIds")
    assert_nothing_created(client, phones, before)


@pytest.mark.parametrize("action", LIFECYCLE)
def test_list_with_holes(client, phones, action):
    before = snapshot(client, phones)
    for q in ({"AndroidInstanceIds.1": phones[0], "AndroidInstanceIds.3": phones[1]},
              {"AndroidInstanceIds.2": phones[0]},
              {"AndroidInstanceIds.0": phones[0]},
              {"AndroidInstanceIds.1": phones[0], "AndroidInstanceIds.02": phones[1]},
              {"AndroidInstanceIds.1": phones[0], "AndroidInstanceIds.x": phones[1]},
              {"AndroidInstanceIds.1.Id": phones[0]},
              {"AndroidInstanceIds": phones[0]}):
        e = api_error(call, client, action, q)
        assert (e.status_code, e.code) == (400, "InvalidParameter.AndroidInstanceIds"), q
    assert_nothing_created(client, phones, before)


@pytest.mark.parametrize("action", LIFECYCLE)
def test_too_many_ids(client, phones, action):
    before = snapshot(client, phones)
    many = [phones[0]] + [f"acp-{n:016d}" for n in range(1, 1001)]
    assert len(many) == 1001
    e = api_error(call, client, action, ids_query(*many))
    assert (e.status_code, e.code) == (400, "InvalidParameter.AndroidInstanceIds")
    # 1,000 is within the limit: these ids are then looked up (and not found).
    e = api_error(call, client, action, ids_query(*many[:1000]))
    assert (e.status_code, e.code) == (404, "InvalidAndroidInstanceIds.NotFound")
    assert_nothing_created(client, phones, before)


def test_1000_duplicates_of_one_id_are_one_task(client):
    _, ids = create_group(client, 1, name="bad-dups")
    r = call(client, "RebootAndroidInstancesInGroup", ids_query(*(ids * 1000)))
    assert [c["InstanceId"] for c in r["Tasks"]["ChildTasks"]] == ids
    assert wait_batch(client, r["RequestId"]).total_child_count == 1


@pytest.mark.parametrize("action", LIFECYCLE)
def test_unknown_ids(client, phones, action):
    before = snapshot(client, phones)
    e = api_error(call, client, action, ids_query(UNKNOWN))
    assert (e.status_code, e.code) == (404, "InvalidAndroidInstanceIds.NotFound")
    assert UNKNOWN in e.message
    # One unknown id among known ones fails the whole call.
    e = api_error(call, client, action, ids_query(phones[0], UNKNOWN, phones[1]))
    assert (e.status_code, e.code) == (404, "InvalidAndroidInstanceIds.NotFound")
    e = api_error(call, client, action, ids_query("not-even-an-id"))
    assert e.code == "InvalidAndroidInstanceIds.NotFound"
    assert_nothing_created(client, phones, before)


@pytest.mark.parametrize("action", LIFECYCLE)
def test_another_accounts_ids(client, phones, foreign, action):
    before = snapshot(client, phones)
    e = api_error(call, client, action, ids_query(foreign))
    assert (e.status_code, e.code) == (404, "InvalidAndroidInstanceIds.NotFound")
    e = api_error(call, client, action, ids_query(phones[0], foreign))
    assert (e.status_code, e.code) == (404, "InvalidAndroidInstanceIds.NotFound")
    assert_nothing_created(client, phones, before)


def test_foreign_ids_through_the_sdk_models(client, phones, foreign):
    before = snapshot(client, phones)
    calls = [
        lambda ids: client.start_android_instance(models.StartAndroidInstanceRequest(android_instance_ids=ids)),
        lambda ids: client.stop_android_instance(models.StopAndroidInstanceRequest(android_instance_ids=ids)),
        lambda ids: client.reboot_android_instances_in_group(
            models.RebootAndroidInstancesInGroupRequest(android_instance_ids=ids)),
        lambda ids: client.reset_android_instances_in_group(
            models.ResetAndroidInstancesInGroupRequest(android_instance_ids=ids)),
    ]
    for fn in calls:
        for ids in ([foreign], [phones[1], foreign], [UNKNOWN]):
            e = api_error(fn, ids)
            assert (e.status_code, e.code) == (404, "InvalidAndroidInstanceIds.NotFound")
    assert_nothing_created(client, phones, before)
    # Listing a foreign id finds nothing (a filter, not an error).
    assert client.describe_android_instances(models.DescribeAndroidInstancesRequest(
        android_instance_ids=[foreign])).body.total_count == 0


@pytest.mark.parametrize("action,query,code", [
    ("StopAndroidInstance", {"ForceStop": "yes"}, "InvalidParameter.ForceStop"),
    ("StopAndroidInstance", {"ForceStop": "1"}, "InvalidParameter.ForceStop"),
    ("RebootAndroidInstancesInGroup", {"ForceStop": "maybe"}, "InvalidParameter.ForceStop"),
    ("RebootAndroidInstancesInGroup", {"IgnoreParamValidation": "tru"}, "InvalidParameter.IgnoreParamValidation"),
    ("ResetAndroidInstancesInGroup", {"SettingResetType": "x"}, "InvalidParameter.SettingResetType"),
    ("ResetAndroidInstancesInGroup", {"SettingResetType": "-1"}, "InvalidParameter.SettingResetType"),
    ("ResetAndroidInstancesInGroup", {"TargetDataDiskSize": "1.5"}, "InvalidParameter.TargetDataDiskSize"),
    ("ResetAndroidInstancesInGroup", {"TargetDataDiskSize": "99999999999999999999"},
     "InvalidParameter.TargetDataDiskSize"),
    ("ResetAndroidInstancesInGroup", {"AutoPay": "sure"}, "InvalidParameter.AutoPay"),
])
def test_malformed_options(client, phones, action, query, code):
    before = snapshot(client, phones)
    e = api_error(call, client, action, {**ids_query(phones[0]), **query})
    assert (e.status_code, e.code) == (400, code)
    assert_nothing_created(client, phones, before)


def test_booleans_in_any_case_are_accepted(client):
    _, ids = create_group(client, 1, name="bad-bools")
    for v in ("True", "false", "TRUE"):
        r = call(client, "RebootAndroidInstancesInGroup", {**ids_query(*ids), "ForceStop": v})
        wait_batch(client, r["RequestId"])


# --- numbers and enums elsewhere ---

@pytest.mark.parametrize("action,query,code", [
    ("DescribeTasks", {"MaxResults": "ten"}, "InvalidParameter.MaxResults"),
    ("DescribeTasks", {"MaxResults": "0x10"}, "InvalidParameter.MaxResults"),
    ("DescribeTasks", {"Level": "2.0"}, "InvalidParameter.Level"),
    ("DescribeTasks", {"Level": "3"}, "InvalidParameter.Level"),
    ("DescribeTasks", {"TaskType": "Reboot"}, "InvalidParameter.TaskType"),
    ("DescribeTasks", {"TaskStatus": "finished"}, "InvalidParameter.TaskStatus"),
    ("DescribeAndroidInstances", {"MaxResults": "-5"}, "InvalidParameter.MaxResults"),
    ("DescribeAndroidInstances", {"Status": "running"}, "InvalidParameter.Status"),
    ("DescribeAndroidInstances", {"AndroidInstanceIds.2": UNKNOWN}, "InvalidParameter.AndroidInstanceIds"),
    ("DescribeAndroidInstanceGroups", {"MaxResults": "1,000"}, "InvalidParameter.MaxResults"),
    ("DescribeAndroidInstanceGroups", {"SortKey": "Name"}, "InvalidParameter.SortKey"),
    ("DescribeAndroidInstanceGroups", {"InstanceGroupIds.1": "ag-1", "InstanceGroupIds.3": "ag-3"},
     "InvalidParameter.InstanceGroupIds"),
    ("DescribeImageList", {"ImageType": "System", "MaxResults": "many"}, "InvalidParameter.MaxResults"),
    ("DescribeImageList", {"ImageType": "Sys"}, "InvalidParameter.ImageType"),
    ("DescribeImageList", {}, "MissingParameter.ImageType"),
    ("DescribeImageList", {"ImageType": "System", "Status": "GONE"}, "InvalidParameter.Status"),
    ("DescribeRegions", {"AcceptLanguage": "de"}, "InvalidParameter.AcceptLanguage"),
    ("ModifyAndroidInstance", {"AndroidInstanceId": UNKNOWN, "UpBandwidthLimit": "fast"},
     "InvalidParameter.UpBandwidthLimit"),
    ("ModifyAndroidInstance", {"InstanceIds.1": UNKNOWN, "InstanceIds.3": UNKNOWN, "NewAndroidInstanceName": "a"},
     "InvalidParameter.InstanceIds"),
    ("DeleteAndroidInstanceGroup", {}, "MissingParameter.InstanceGroupIds"),
    ("CreateAndroidInstanceGroup", {"BizRegionId": "cn-hangzhou", "ImageId": "imgc-simandroid140000",
                                    "InstanceGroupSpec": "acp.basic.small", "NetworkInfo": "{not json"},
     "InvalidParameter.NetworkInfo"),
    ("CreateAndroidInstanceGroup", {"BizRegionId": "cn-hangzhou", "ImageId": "imgc-simandroid140000",
                                    "InstanceGroupSpec": "acp.basic.small", "Tag.1.Value": "v"},
     "InvalidParameter.Tag"),
    ("CreateAndroidInstanceGroup", {"BizRegionId": "cn-hangzhou", "ImageId": "imgc-simandroid140000",
                                    "InstanceGroupSpec": "acp.basic.small", "Tag.1.Key": "k", "Tag.3.Key": "k"},
     "InvalidParameter.Tag"),
    ("CreateAndroidInstanceGroup", {"BizRegionId": "cn-hangzhou", "ImageId": "imgc-simandroid140000",
                                    "InstanceGroupSpec": "acp.basic.small", "AutoPay": "yes"},
     "InvalidParameter.AutoPay"),
])
def test_malformed_parameters(client, action, query, code):
    before = total_tasks(client)
    e = api_error(call, client, action, query)
    assert (e.status_code, e.code) == (400, code)
    assert total_tasks(client) == before


def test_conflicting_values_for_one_parameter(server, client):
    # The same key in the query and the form body with different values.
    r = signed_request(server, "DescribeImageList", query=[("ImageType", "System")], body={"ImageType": "User"})
    assert error_code(r) == (400, "InvalidParameter.ImageType")
    # The same value twice is fine.
    r = signed_request(server, "DescribeImageList", query=[("ImageType", "System")], body={"ImageType": "System"})
    assert r.status_code == 200, r.text


# --- size limits ---

def test_oversize_form_body(server, client, phones):
    before = snapshot(client, phones)
    big = "x" * (1024 * 1024 + 1)
    r = signed_request(server, "RebootAndroidInstancesInGroup", query=ids_query(phones[0]), body={"Pad": big})
    status, code = error_code(r)
    assert status in (400, 413) and code == "RequestEntityTooLarge"
    # Through the SDK's generic call with a form body.
    e = api_error(call, client, "DescribeImageList", {}, body={"ImageType": "System", "ImageName": big})
    assert e.code == "RequestEntityTooLarge"
    # Unsigned and oversize: still a JSON error.
    r = requests.post(f"http://{server.endpoint}/", data=b"a" * (2 << 20),
                      headers={"content-type": "application/x-www-form-urlencoded"})
    assert error_code(r)[1] == "RequestEntityTooLarge"
    assert_nothing_created(client, phones, before)


def test_body_just_under_the_limit_is_read(server, client):
    name = "y" * (900 * 1024)
    r = client.describe_image_list(models.DescribeImageListRequest(image_type="System", image_name=name)).body
    assert r.total_count == 0


def test_too_many_parameters(server, client):
    q = [(f"P{n}", "1") for n in range(5001)]
    status, code = error_code(signed_request(server, "DescribeTasks", query=q))
    assert status == 400 and code.startswith("InvalidParameter")


def test_very_long_query_is_refused_with_414(server, client):
    """Every parameter travels in the URL. Up to the HTTP stack's request-target limit (64 KiB,
    fixed in hyper) the request is read and answered; past it the stack itself answers 414 with
    an empty body, before our handler runs (a known limit, documented in the README: the SDK then
    raises UnretryableException instead of a ClientException)."""
    assert client.describe_tasks(models.DescribeTasksRequest(param="p" * 60_000)).body.total_count == 0
    r = signed_request(server, "DescribeTasks", query=[("Param", "p" * 70_000)])
    assert r.status_code == 414


# --- encodings ---

@pytest.mark.parametrize("raw", [b"\xff", b"\xe4\xb8", b"a\xc3(", b"\xed\xa0\x80", b"\xc0\xaf"])
def test_invalid_utf8_in_a_value(server, client, raw):
    r = signed_request(server, "DescribeTasks", query=[("InvokeId", raw)])
    assert error_code(r) == (400, "InvalidParameter.InvokeId")
    r = signed_request(server, "DescribeImageList", body=b"ImageType=System&ImageName=" +
                       "".join("%%%02X" % b for b in raw).encode())
    assert error_code(r) == (400, "InvalidParameter.ImageName")


def test_invalid_utf8_in_a_key_or_bad_escapes(server, client, phones):
    """Hand-made URLs (the signing helper would encode these bytes properly); the query is
    refused while it is decoded, before the signature is even looked at."""
    before = total_tasks(client)
    for query in ("AndroidInstanceIds.1=" + phones[0] + "&K%FFey=1",
                  "AndroidInstanceIds.1=%E4%B8",
                  "AndroidInstanceIds.1=%zz",
                  "AndroidInstanceIds.1=abc%",
                  "AndroidInstanceIds.1=%4"):
        signed = signed_request(server, "RebootAndroidInstancesInGroup")
        h = {k: v for k, v in signed.request.headers.items() if k.lower() not in ("host", "content-length")}
        h["x-acs-signature-nonce"] = new_nonce()
        status, code = error_code(raw_post(server, f"/?{query}", h))
        assert status == 400 and code.startswith("InvalidParameter."), (query, code)
        assert code != "InvalidParameter.TooMany"
    assert total_tasks(client) == before


def test_unicode_values_round_trip(server, client):
    # Valid UTF-8 outside ASCII is fine everywhere: it is just not found here.
    r = client.describe_tasks(models.DescribeTasksRequest(instance_name="手机 ~*/+&=", param="中文")).body
    assert r.total_count == 0


# --- no 5xx on anything a client can send ---

WEIRD = ["", " ", "-1", "0", "1", "101", "99999999999999999999", "1e400", "NaN", "x" * 2000, "中文",
         "\u0000", "%", "%%", "'; DROP TABLE tasks; --", "True", "[]", "{}", '{"a":', "acp-", "t-", "\t\n"]

FUZZED = {
    "DescribeTasks": ["InvokeId", "ResourceIds.1", "TaskIds.1", "ParentTaskId", "TaskType", "TaskTypes.1",
                      "TaskStatus", "TaskStatuses.1", "Level", "InstanceId", "InstanceName", "Param",
                      "MaxResults", "NextToken"],
    "DescribeAndroidInstances": ["AndroidInstanceIds.1", "AndroidInstanceName", "InstanceGroupId", "Status",
                                 "MaxResults", "NextToken", "SortKey", "SortType", "Tag.1.Key"],
    "DescribeAndroidInstanceGroups": ["InstanceGroupIds.1", "InstanceGroupName", "MaxResults", "NextToken",
                                      "Tags.1.Key", "BizRegionId"],
    "DescribeImageList": ["ImageType", "ImageId", "MaxResults", "NextToken", "Status"],
    "DescribeRegions": ["AcceptLanguage", "SaleMode"],
    "StartAndroidInstance": ["AndroidInstanceIds.1", "SaleMode"],
    "StopAndroidInstance": ["AndroidInstanceIds.1", "ForceStop"],
    "RebootAndroidInstancesInGroup": ["AndroidInstanceIds.1", "ForceStop"],
    "ResetAndroidInstancesInGroup": ["AndroidInstanceIds.1", "SettingResetType", "TargetDataDiskSize"],
    "ModifyAndroidInstance": ["AndroidInstanceId", "InstanceIds.1", "NewAndroidInstanceName"],
    "DeleteAndroidInstanceGroup": ["InstanceGroupIds.1"],
    "CreateAndroidInstanceGroup": ["Amount", "NumberOfInstances", "NetworkInfo", "InstanceGroupName"],
}


def test_no_server_error_on_odd_values(server, client, phones):
    before = snapshot(client, phones)
    failures = []
    for action, names in FUZZED.items():
        for name in names:
            for value in WEIRD:
                q = [(name, value)]
                if action == "CreateAndroidInstanceGroup":
                    # Leave out a required field so that nothing is ever created.
                    q += [("ImageId", "imgc-simandroid140000"), ("InstanceGroupSpec", "acp.basic.small")]
                r = signed_request(server, action, query=q)
                try:
                    body = r.json()
                except ValueError:
                    failures.append((action, name, value, r.status_code, r.text[:100]))
                    continue
                if r.status_code >= 500 or (r.status_code >= 400 and not body.get("Code")):
                    failures.append((action, name, value, r.status_code, body))
    assert not failures, failures[:10]
    # None of the lifecycle calls found anything to act on.
    assert_nothing_created(client, phones, before)


def test_other_methods_and_paths_get_json_errors(server):
    for method, path in (("PUT", "/"), ("DELETE", "/"), ("GET", "/nope"), ("POST", "/v1/tasks")):
        r = requests.request(method, f"http://{server.endpoint}{path}")
        status, code = error_code(r)
        assert 400 <= status < 500 and code
    r = requests.post(f"http://{server.endpoint}/", headers={"x-acs-action": "DescribeTasks",
                                                             "x-acs-version": API_VERSION},
                      data=b"\x00\xff" * 100)
    assert 400 <= error_code(r)[0] < 500


@pytest.mark.parametrize("query,code", [
    ({"TaskType": "Bogus", "InstanceId": "{phone}"}, "InvalidParameter.TaskType"),
    ({"TaskType": "CreateInstance", "InstanceId": "{phone}"}, "InvalidParameter.TaskType"),
    ({"ErrorCode": "Nope", "InstanceId": "{phone}"}, "InvalidParameter.ErrorCode"),
    ({"Count": "0", "InstanceId": "{phone}"}, "InvalidParameter.Count"),
    ({"Count": "x", "InstanceId": "{phone}"}, "InvalidParameter.Count"),
    ({"InstanceId": UNKNOWN}, "InvalidInstanceId.NotFound"),
    ({"InstanceId": "{foreign}"}, "InvalidInstanceId.NotFound"),
])
def test_inject_fault_validation(client, phones, foreign, query, code):
    q = {k: v.format(phone=phones[0], foreign=foreign) for k, v in query.items()}
    e = api_error(call, client, "InjectSimulatedFault", q)
    assert e.code == code
    # Nothing was injected: the phone still reboots.
    r = call(client, "RebootAndroidInstancesInGroup", ids_query(phones[0]))
    assert wait_batch(client, r["RequestId"]).task_status == "Finished"
