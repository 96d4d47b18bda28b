"""Authentication and routing: both signature schemes through the new SDK, the classic
`aliyun-python-sdk-core` CommonRequest over GET and POST, and every way a request can be refused
(bad signature, unknown key, stale date, replayed nonce, unsigned, unknown action or version).
The refused requests are built with our own signer (conftest), so that the tests control the date,
the nonce and the bytes."""

import hashlib
import json
import uuid

import pytest
import requests
from alibabacloud_eds_aic20230930 import models
from aliyunsdkcore.acs_exception.exceptions import ServerException as ClassicServerException
from aliyunsdkcore.client import AcsClient
from aliyunsdkcore.request import CommonRequest

from conftest import (API_VERSION, KEY_ID, REQUEST_ID_RE, UA, acs3_signature, api_error, call,
                      create_group, error_code, new_nonce, signed_request, tasks_of, total_tasks,
                      utc_now, v1_request, v1_signature, wait_batch)


# --- our signer is the SDK's (the contract's vectors), so the refusals below mean something ---

def test_own_signer_matches_the_contract_vectors():
    q = [("InvokeId", "inv-1"), ("MaxResults", "10"), ("Param", "a b*c~d/中"), ("ResourceIds.1", "acp-1"),
         ("ResourceIds.2", "acp-2"), ("TaskStatuses.1", "Finished"), ("TaskStatuses.2", "Failed")]
    h = {"accept": "application/json", "host": "127.0.0.1:18096", "user-agent": UA,
         "x-acs-action": "DescribeTasks", "x-acs-content-sha256": hashlib.sha256(b"").hexdigest(),
         "x-acs-credentials-provider": "static_ak", "x-acs-date": "2025-01-01T00:00:00Z",
         "x-acs-signature-nonce": "0123456789abcdef0123456789abcdef", "x-acs-version": "2023-09-30"}
    assert acs3_signature("POST", "/", q, h, sorted(h), b"", "testsecret") == \
        "61d20b2eadda13f12231787e6cbbafbd596ab555914c6be3ec7f1018f39070b2"
    p = q + [("Action", "DescribeTasks"), ("Format", "json"), ("Version", "2023-09-30"),
             ("Timestamp", "2025-01-01T00:00:00Z"), ("SignatureNonce", "00112233445566778899aabbccddeeff"),
             ("SignatureMethod", "HMAC-SHA1"), ("SignatureVersion", "1.0"), ("AccessKeyId", "testid")]
    assert v1_signature("POST", p, "testsecret") == "2UVUbBxZAxSWrbDhg3VHaJL8o6I="


def test_own_signer_is_accepted(server):
    for sign in (lambda: signed_request(server, "DescribeTasks", [("MaxResults", "1")]),
                 lambda: signed_request(server, "DescribeImageList", body={"ImageType": "System"}),
                 lambda: v1_request(server, "DescribeTasks", {"MaxResults": "1"}),
                 lambda: v1_request(server, "DescribeTasks", {"MaxResults": "1"}, method="POST")):
        r = sign()
        assert r.status_code == 200, r.text
        assert REQUEST_ID_RE.match(r.json()["RequestId"])


# --- the SDK's two schemes and the classic SDK ---

def test_acs3_and_v2_signatures_through_the_sdk(server, client):
    v2 = server.client(signature_algorithm="v2")
    _, ids = create_group(v2, 1, name="auth-v2")
    r = v2.reboot_android_instances_in_group(models.RebootAndroidInstancesInGroupRequest(android_instance_ids=ids))
    # Seen the same way through either scheme.
    for c in (client, v2):
        seen = tasks_of(c, invoke_id=r.body.request_id)
        assert {t.task_id for t in seen} == {r.body.tasks.parent_task_id, r.body.tasks.child_tasks[0].task_id}
    assert wait_batch(v2, r.body.request_id).task_status == "Finished"
    # DescribeImageList puts its parameters in the form body, which v1 signs as parameters.
    for c in (client, v2):
        images = c.describe_image_list(models.DescribeImageListRequest(image_type="System", max_results=1)).body
        assert len(images.data) == 1 and images.total_count >= 2 and images.next_token
        nxt = c.describe_image_list(models.DescribeImageListRequest(
            image_type="System", max_results=1, next_token=images.next_token)).body
        assert nxt.data[0].image_id != images.data[0].image_id
    # Errors come back the same way under v2.
    e = api_error(v2.describe_tasks, models.DescribeTasksRequest(task_type="Bogus"))
    assert (e.status_code, e.code) == (400, "InvalidParameter.TaskType")


def classic(server, key=None):
    key_id, secret = key or server.key
    return AcsClient(key_id, secret, "cn-hangzhou")


def classic_request(server, action, params, method="GET"):
    req = CommonRequest()
    req.set_domain(server.endpoint)
    req.set_version(API_VERSION)
    req.set_action_name(action)
    req.set_method(method)
    req.set_protocol_type("http")
    req.set_accept_format("json")
    for k, v in params.items():
        req.add_query_param(k, v)
    return req


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_classic_common_request(server, client, method):
    _, ids = create_group(client, 2, name="auth-classic")
    r = client.reboot_android_instances_in_group(models.RebootAndroidInstancesInGroupRequest(android_instance_ids=ids))
    wait_batch(client, r.body.request_id)
    out = classic(server).do_action_with_exception(classic_request(server, "DescribeTasks", {
        "InvokeId": r.body.request_id, "Level": "2", "MaxResults": "1"}, method))
    body = json.loads(out)
    assert body["TotalCount"] == 2
    assert len(body["Data"]) == 1 and body["NextToken"]
    first = body["Data"][0]
    assert first["InvokeId"] == r.body.request_id and first["Level"] == 2 and first["TaskStatus"] == "Finished"
    out = classic(server).do_action_with_exception(classic_request(server, "DescribeTasks", {
        "InvokeId": r.body.request_id, "Level": "2", "MaxResults": "1", "NextToken": body["NextToken"]}, method))
    second = json.loads(out)["Data"][0]
    assert {first["TaskId"], second["TaskId"]} == {c.task_id for c in r.body.tasks.child_tasks}
    # List parameters through the classic encoding.
    out = classic(server).do_action_with_exception(classic_request(server, "DescribeTasks", {
        "TaskIds.1": first["TaskId"], "TaskIds.2": second["TaskId"]}, method))
    assert json.loads(out)["TotalCount"] == 2


def test_classic_common_request_errors(server):
    with pytest.raises(ClassicServerException) as info:
        classic(server).do_action_with_exception(classic_request(server, "DescribeTasks", {"TaskType": "Bogus"}))
    assert info.value.get_http_status() == 400
    assert info.value.get_error_code() == "InvalidParameter.TaskType"
    with pytest.raises(ClassicServerException) as info:
        classic(server, ("nobody", "x")).do_action_with_exception(classic_request(server, "DescribeTasks", {}))
    # An unknown key answers as a bad signature (nothing tells which key ids exist).
    assert info.value.get_http_status() == 403
    assert info.value.get_error_code() == "SignatureDoesNotMatch"
    with pytest.raises(ClassicServerException) as info:
        classic(server, (KEY_ID, "wrong")).do_action_with_exception(classic_request(server, "DescribeTasks", {}))
    assert info.value.get_error_code() == "SignatureDoesNotMatch"
    assert 400 <= info.value.get_http_status() < 500


# --- refusals ---

def test_bad_signature_is_refused(server, client):
    before = total_tasks(client)
    e = api_error(server.client(key=(KEY_ID, "not-the-secret")).describe_tasks, models.DescribeTasksRequest())
    assert (e.status_code, e.code) == (403, "SignatureDoesNotMatch")
    e = api_error(server.client(key=(KEY_ID, "not-the-secret"), signature_algorithm="v2").describe_tasks,
                  models.DescribeTasksRequest())
    assert (e.status_code, e.code) == (403, "SignatureDoesNotMatch")
    assert error_code(signed_request(server, "DescribeTasks", sign_secret="x")) == (403, "SignatureDoesNotMatch")
    assert error_code(v1_request(server, "DescribeTasks", sign_secret="x")) == (403, "SignatureDoesNotMatch")
    # A refused task-producing call creates nothing.
    _, ids = create_group(client, 1, name="auth-bad")
    r = signed_request(server, "RebootAndroidInstancesInGroup", [("AndroidInstanceIds.1", ids[0])], sign_secret="x")
    assert error_code(r) == (403, "SignatureDoesNotMatch")
    assert total_tasks(client) == before
    assert tasks_of(client, instance_id=ids[0]) == []


def test_tampered_requests_are_refused(server):
    # Sign one query, send another.
    good = signed_request(server, "DescribeTasks", [("MaxResults", "1")])
    assert good.status_code == 200
    h = {k: v for k, v in good.request.headers.items()}
    h["x-acs-signature-nonce"] = new_nonce()  # a fresh nonce, but the signature covers the old one
    r = requests.post(f"http://{server.endpoint}/?MaxResults=2", headers=h, data=b"")
    assert error_code(r) == (403, "SignatureDoesNotMatch")
    # A body that is not the one hashed in x-acs-content-sha256.
    req = signed_request(server, "DescribeImageList", body={"ImageType": "System"})
    assert req.status_code == 200
    h = dict(req.request.headers)
    h["x-acs-signature-nonce"] = new_nonce()
    r = requests.post(f"http://{server.endpoint}/", headers=h, data=b"ImageType=User")
    assert error_code(r) == (403, "SignatureDoesNotMatch")
    # Another action under the same signature.
    h = dict(good.request.headers)
    h["x-acs-action"] = "DescribeRegions"
    r = requests.post(f"http://{server.endpoint}/?MaxResults=1", headers=h, data=b"")
    assert error_code(r) == (403, "SignatureDoesNotMatch")


def test_unknown_key_is_refused(server):
    # As a bad signature would be: nothing tells which key ids exist (test_tenancy.py).
    e = api_error(server.client(key=("no-such-key", "x")).describe_tasks, models.DescribeTasksRequest())
    assert (e.status_code, e.code) == (403, "SignatureDoesNotMatch")
    e = api_error(server.client(key=("no-such-key", "x"), signature_algorithm="v2").describe_regions,
                  models.DescribeRegionsRequest())
    assert (e.status_code, e.code) == (403, "SignatureDoesNotMatch")
    assert error_code(signed_request(server, "DescribeTasks", key=("nobody", "x"))) == (403, "SignatureDoesNotMatch")
    assert error_code(v1_request(server, "DescribeTasks", key=("nobody", "x"))) == (403, "SignatureDoesNotMatch")


@pytest.mark.parametrize("offset", [-16 * 60, 16 * 60, -24 * 3600, 365 * 24 * 3600])
def test_stale_or_future_date_is_refused(server, offset):
    r = signed_request(server, "DescribeTasks", date=utc_now(offset))
    assert error_code(r) == (400, "InvalidTimeStamp.Expired")
    r = v1_request(server, "DescribeTasks", timestamp=utc_now(offset))
    assert error_code(r) == (400, "InvalidTimeStamp.Expired")


@pytest.mark.parametrize("offset", [-14 * 60, 14 * 60])
def test_date_within_15_minutes_is_accepted(server, offset):
    assert signed_request(server, "DescribeTasks", date=utc_now(offset)).status_code == 200
    assert v1_request(server, "DescribeTasks", timestamp=utc_now(offset)).status_code == 200


@pytest.mark.parametrize("date", ["2025-01-01 00:00:00", "yesterday", "2025-13-01T00:00:00Z"])
def test_malformed_date_is_refused(server, date):
    status, code = error_code(signed_request(server, "DescribeTasks", date=date))
    assert status == 400 and code in ("InvalidParameter.x-acs-date", "InvalidTimeStamp.Format"), code


def test_replayed_nonce_is_refused(server, client):
    nonce = new_nonce()
    assert signed_request(server, "DescribeTasks", nonce=nonce).status_code == 200
    assert error_code(signed_request(server, "DescribeTasks", nonce=nonce)) == (400, "SignatureNonceUsed")
    # The exact same bytes sent again.
    first = signed_request(server, "DescribeRegions")
    assert first.status_code == 200
    again = requests.post(first.request.url, headers=dict(first.request.headers), data=first.request.body)
    assert error_code(again) == (400, "SignatureNonceUsed")
    # Legacy scheme too.
    nonce = new_nonce()
    assert v1_request(server, "DescribeTasks", nonce=nonce).status_code == 200
    assert error_code(v1_request(server, "DescribeTasks", nonce=nonce)) == (400, "SignatureNonceUsed")
    # A replayed task-producing call creates nothing the second time.
    _, ids = create_group(client, 1, name="auth-replay")
    nonce = new_nonce()
    r = signed_request(server, "RebootAndroidInstancesInGroup", [("AndroidInstanceIds.1", ids[0])], nonce=nonce)
    assert r.status_code == 200, r.text
    wait_batch(client, r.json()["RequestId"])
    r = signed_request(server, "RebootAndroidInstancesInGroup", [("AndroidInstanceIds.1", ids[0])], nonce=nonce)
    assert error_code(r) == (400, "SignatureNonceUsed")
    assert len(tasks_of(client, instance_id=ids[0])) == 1


def test_nonce_of_a_refused_request_is_not_used_up(server):
    nonce = new_nonce()
    assert error_code(signed_request(server, "DescribeTasks", nonce=nonce, sign_secret="x"))[1] == "SignatureDoesNotMatch"
    assert error_code(signed_request(server, "DescribeTasks", nonce=nonce, date=utc_now(-3600)))[1] == \
        "InvalidTimeStamp.Expired"
    assert signed_request(server, "DescribeTasks", nonce=nonce).status_code == 200


def test_nonces_are_per_key(server):
    other = server.create_key("auth-nonce-" + uuid.uuid4().hex[:6])
    nonce = new_nonce()
    assert signed_request(server, "DescribeTasks", nonce=nonce).status_code == 200
    assert signed_request(server, "DescribeTasks", nonce=nonce, key=other).status_code == 200


def test_unsigned_or_incomplete_requests_are_refused(server):
    r = requests.post(f"http://{server.endpoint}/", headers={"x-acs-action": "DescribeTasks",
                                                             "x-acs-version": API_VERSION})
    assert error_code(r) == (400, "IncompleteSignature")
    r = requests.get(f"http://{server.endpoint}/?Action=DescribeTasks&Version={API_VERSION}")
    assert error_code(r) == (400, "IncompleteSignature")
    # x-acs-date left out of SignedHeaders.
    good = signed_request(server, "DescribeTasks")
    h = dict(good.request.headers)
    auth = h["Authorization"]
    h["Authorization"] = auth.replace("x-acs-date;", "")
    h["x-acs-signature-nonce"] = new_nonce()
    assert error_code(requests.post(f"http://{server.endpoint}/", headers=h)) == (400, "IncompleteSignature")
    # A garbled Authorization header.
    h["Authorization"] = "ACS3-HMAC-SHA256 nonsense"
    status, code = error_code(requests.post(f"http://{server.endpoint}/", headers=h))
    assert status == 400 and code == "IncompleteSignature"


def test_unknown_action_and_version(server, client):
    r = signed_request(server, "DescribeNothing")
    assert error_code(r) == (404, "InvalidAction.NotFound")
    r = signed_request(server, "DescribeTasks", version="2017-01-01")
    assert error_code(r) == (400, "InvalidVersion")
    r = v1_request(server, "NoSuchAction")
    assert error_code(r) == (404, "InvalidAction.NotFound")
    e = api_error(call, client, "NoSuchThing")
    assert (e.status_code, e.code) == (404, "InvalidAction.NotFound")


def test_region_must_be_the_servers(server):
    r = v1_request(server, "DescribeTasks", {"RegionId": "cn-beijing"})
    assert error_code(r) == (400, "InvalidParameter.RegionId")
    assert v1_request(server, "DescribeTasks", {"RegionId": "cn-hangzhou"}).status_code == 200


def test_accounts_do_not_see_each_other(server, client):
    other = server.client(key=server.create_key("auth-iso-" + uuid.uuid4().hex[:6]))
    gid, ids = create_group(client, 1, name="auth-iso")
    r = client.reboot_android_instances_in_group(models.RebootAndroidInstancesInGroupRequest(android_instance_ids=ids))
    assert other.describe_tasks(models.DescribeTasksRequest(invoke_id=r.body.request_id)).body.total_count == 0
    assert other.describe_tasks(models.DescribeTasksRequest(instance_id=ids[0])).body.total_count == 0
    assert other.describe_tasks(models.DescribeTasksRequest(task_ids=[r.body.tasks.parent_task_id])).body.total_count == 0
    assert other.describe_android_instances(models.DescribeAndroidInstancesRequest(
        android_instance_ids=ids)).body.total_count == 0
    assert other.describe_android_instance_groups(models.DescribeAndroidInstanceGroupsRequest(
        instance_group_ids=[gid])).body.total_count == 0
    wait_batch(client, r.body.request_id)


@pytest.mark.parametrize("scheme", ["acs3", "v2", "classic-GET", "classic-POST"])
def test_special_characters_survive_every_scheme(server, client, scheme):
    """Spaces, `+`, `*`, `~`, `/`, `&`, `=`, `%` and non-ASCII text are encoded differently by each
    scheme; the signature must still match and the filter must see the text as sent."""
    _, ids = create_group(client, 1, name="auth-chars")
    name = "ch" + uuid.uuid4().hex[:6]
    client.modify_android_instance(models.ModifyAndroidInstanceRequest(android_instance_id=ids[0],
                                                                       new_android_instance_name=name + "中:文"))
    r = client.reboot_android_instances_in_group(models.RebootAndroidInstancesInGroupRequest(android_instance_ids=ids))
    wait_batch(client, r.body.request_id)
    weird = "a b*c~d/e+f=g&h中'!()%20"
    if scheme in ("acs3", "v2"):
        c = client if scheme == "acs3" else server.client(signature_algorithm="v2")
        assert c.describe_tasks(models.DescribeTasksRequest(param=weird, instance_name=weird)).body.total_count == 0
        got = c.describe_tasks(models.DescribeTasksRequest(instance_name=name[2:] + "中:")).body
    else:
        method = scheme.split("-")[1]
        out = classic(server).do_action_with_exception(classic_request(
            server, "DescribeTasks", {"Param": weird, "InstanceName": weird}, method))
        assert json.loads(out)["TotalCount"] == 0
        got = models.DescribeTasksResponseBody().from_map(json.loads(classic(server).do_action_with_exception(
            classic_request(server, "DescribeTasks", {"InstanceName": name[2:] + "中:"}, method))))
    assert [t.invoke_id for t in got.data] == [r.body.request_id]
