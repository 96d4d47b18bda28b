"""Regions, images, groups and instances: DescribeRegions, DescribeImageList,
CreateAndroidInstanceGroup (and its validation), DescribeAndroidInstanceGroups,
DescribeAndroidInstances (filters, pagination), ModifyAndroidInstance, DeleteAndroidInstanceGroup."""

import re
import uuid

import pytest
from alibabacloud_eds_aic20230930 import models

from conftest import (ISO_RE, Server, api_error, call, create_group, describe_instances, tasks_of,
                      wait_batch, wait_for)

GROUP_RE = re.compile(r"^ag-[0-9a-z]{16}$")
INSTANCE_RE = re.compile(r"^acp-[0-9a-z]{16}$")
IMAGES = {"imgc-simandroid120000", "imgc-simandroid140000"}


def unique(prefix):
    return prefix + uuid.uuid4().hex[:8]


def create_request(**kw):
    base = dict(biz_region_id="cn-hangzhou", image_id="imgc-simandroid140000",
                instance_group_spec="acp.basic.small", number_of_instances=1)
    base.update(kw)
    return models.CreateAndroidInstanceGroupRequest(**base)


def group_count(client):
    return client.describe_android_instance_groups(models.DescribeAndroidInstanceGroupsRequest()).body.total_count


def instance_count(client):
    return client.describe_android_instances(models.DescribeAndroidInstancesRequest()).body.total_count


def live_groups(client):
    """Ids of the groups not being deleted (deletions of earlier tests finish in the background)."""
    out, token = set(), None
    while True:
        r = client.describe_android_instance_groups(models.DescribeAndroidInstanceGroupsRequest(
            max_results=100, next_token=token)).body
        out |= {m.instance_group_id for m in r.instance_group_model
                if m.instance_group_status not in ("DELETING", "DELETED")}
        token = r.next_token
        if not token:
            return out


def live_instances(client):
    out, token = set(), None
    while True:
        r = client.describe_android_instances(models.DescribeAndroidInstancesRequest(
            max_results=100, next_token=token)).body
        out |= {m.android_instance_id for m in r.instance_model
                if m.android_instance_status not in ("DELETING", "DELETED")}
        token = r.next_token
        if not token:
            return out


# --- regions and images ---

def test_describe_regions(client):
    r = client.describe_regions(models.DescribeRegionsRequest()).body
    assert [m.region_id for m in r.region_models] == ["cn-hangzhou"]
    assert r.region_models[0].region_name
    cn = client.describe_regions(models.DescribeRegionsRequest(accept_language="cn")).body
    assert cn.region_models[0].region_id == "cn-hangzhou"
    e = api_error(client.describe_regions, models.DescribeRegionsRequest(accept_language="fr"))
    assert (e.status_code, e.code) == (400, "InvalidParameter.AcceptLanguage")


def test_describe_regions_follows_the_configured_region(workdir):
    s = Server(workdir / "region-eu", extra_args=["--region", "eu-central-1"]).start()
    try:
        c = s.client()
        assert [m.region_id for m in c.describe_regions(models.DescribeRegionsRequest()).body.region_models] == \
            ["eu-central-1"]
        e = api_error(c.create_android_instance_group, create_request(biz_region_id="cn-hangzhou"))
        assert e.code == "InvalidParameter.BizRegionId"
        r = c.create_android_instance_group(create_request(biz_region_id="eu-central-1", instance_group_name="eu"))
        ids = r.body.instance_group_infos[0].instance_ids
        wait_for(lambda: describe_instances(c, ids)[ids[0]].android_instance_status == "RUNNING")
        rb = c.reboot_android_instances_in_group(models.RebootAndroidInstancesInGroupRequest(android_instance_ids=ids))
        assert {t.region_id for t in tasks_of(c, invoke_id=rb.body.request_id)} == {"eu-central-1"}
        assert describe_instances(c, ids)[ids[0]].region_id == "eu-central-1"
    finally:
        s.stop()


def test_describe_image_list(client):
    r = client.describe_image_list(models.DescribeImageListRequest(image_type="System")).body
    assert {d.image_id for d in r.data} == IMAGES
    assert r.total_count == 2 and not r.next_token
    for d in r.data:
        assert d.image_type == "System" and d.status == "AVAILABLE"
        assert d.image_name and d.image_version in ("12", "14")
    assert client.describe_image_list(models.DescribeImageListRequest(image_type="User")).body.total_count == 0
    one = client.describe_image_list(models.DescribeImageListRequest(
        image_type="System", image_id="imgc-simandroid120000")).body
    assert [d.image_id for d in one.data] == ["imgc-simandroid120000"]
    # Paged in the form body.
    p1 = client.describe_image_list(models.DescribeImageListRequest(image_type="System", max_results=1)).body
    p2 = client.describe_image_list(models.DescribeImageListRequest(
        image_type="System", max_results=1, next_token=p1.next_token)).body
    assert len(p1.data) == len(p2.data) == 1 and not p2.next_token
    assert {p1.data[0].image_id, p2.data[0].image_id} == IMAGES


def test_describe_image_list_validation(client):
    e = api_error(client.describe_image_list, models.DescribeImageListRequest())
    assert (e.status_code, e.code) == (400, "MissingParameter.ImageType")
    e = api_error(client.describe_image_list, models.DescribeImageListRequest(image_type="Custom"))
    assert (e.status_code, e.code) == (400, "InvalidParameter.ImageType")
    for bad in (0, 101):
        e = api_error(client.describe_image_list, models.DescribeImageListRequest(image_type="System", max_results=bad))
        assert (e.status_code, e.code) == (400, "InvalidParameter.MaxResults")
    e = api_error(client.describe_image_list, models.DescribeImageListRequest(image_type="System", next_token="zzz"))
    assert (e.status_code, e.code) == (400, "InvalidParameter.NextToken")


# --- CreateAndroidInstanceGroup ---

def test_create_group_response_and_listing(client):
    name = unique("res")
    r = client.create_android_instance_group(create_request(
        number_of_instances=3, instance_group_name=name, instance_group_spec="acp.std.large",
        tag=[models.CreateAndroidInstanceGroupRequestTag(key="team", value="qa")])).body
    assert len(r.instance_group_ids) == 1 and GROUP_RE.match(r.instance_group_ids[0])
    info = r.instance_group_infos[0]
    assert info.instance_group_id == r.instance_group_ids[0]
    assert len(info.instance_ids) == 3 and all(INSTANCE_RE.match(i) for i in info.instance_ids)
    gid, ids = info.instance_group_id, info.instance_ids
    wait_for(lambda: {m.android_instance_status for m in describe_instances(client, ids).values()} == {"RUNNING"})
    g = client.describe_android_instance_groups(models.DescribeAndroidInstanceGroupsRequest(
        instance_group_ids=[gid])).body
    assert g.total_count == 1
    m = g.instance_group_model[0]
    assert (m.instance_group_id, m.instance_group_name, m.instance_group_spec) == (gid, name, "acp.std.large")
    assert m.instance_group_status == "RUNNING"
    assert m.number_of_instances == "3"
    assert m.image_id == "imgc-simandroid140000" and m.region_id == "cn-hangzhou"
    assert [(t.key, t.value) for t in m.tags] == [("team", "qa")]
    found = describe_instances(client, ids)
    assert {i.android_instance_group_id for i in found.values()} == {gid}
    assert sorted(i.android_instance_name for i in found.values()) == [f"{name}-1", f"{name}-2", f"{name}-3"]
    # Creation is not one of the vendor's task types: no task is listed for it.
    assert tasks_of(client, resource_ids=ids) == []


@pytest.mark.parametrize("spec", ["acp.basic.small", "acp.std.large", "acp.perf.large"])
def test_vendor_specs_are_accepted(client, spec):
    r = client.create_android_instance_group(create_request(instance_group_spec=spec,
                                                            image_id="imgc-simandroid120000")).body
    gid = r.instance_group_ids[0]
    m = client.describe_android_instance_groups(models.DescribeAndroidInstanceGroupsRequest(
        instance_group_ids=[gid])).body.instance_group_model[0]
    assert m.instance_group_spec == spec
    client.delete_android_instance_group(models.DeleteAndroidInstanceGroupRequest(instance_group_ids=[gid]))


def test_amount_creates_several_groups(client):
    name = unique("amt")
    r = client.create_android_instance_group(create_request(amount=3, number_of_instances=2,
                                                            instance_group_name=name)).body
    assert len(r.instance_group_ids) == len(set(r.instance_group_ids)) == 3
    assert [i.instance_group_id for i in r.instance_group_infos] == r.instance_group_ids
    assert all(len(i.instance_ids) == 2 for i in r.instance_group_infos)
    listed = client.describe_android_instance_groups(models.DescribeAndroidInstanceGroupsRequest(
        instance_group_name=name)).body
    assert {m.instance_group_id for m in listed.instance_group_model} == set(r.instance_group_ids)
    client.delete_android_instance_group(models.DeleteAndroidInstanceGroupRequest(
        instance_group_ids=r.instance_group_ids))


def test_upper_bounds_are_accepted(workdir):
    """100 phones in a group and 100 groups in one call, on a server of their own."""
    s = Server(workdir / "bounds", sim_delay_ms=1).start()
    try:
        c = s.client()
        r = c.create_android_instance_group(create_request(number_of_instances=100)).body
        assert len(r.instance_group_infos[0].instance_ids) == 100
        r = c.create_android_instance_group(create_request(amount=100)).body
        assert len(r.instance_group_ids) == 100
        assert group_count(c) == 101
        assert instance_count(c) == 200
    finally:
        s.stop()


@pytest.mark.parametrize("kw,code", [
    (dict(biz_region_id=None), "MissingParameter.BizRegionId"),
    (dict(biz_region_id="cn-beijing"), "InvalidParameter.BizRegionId"),
    (dict(image_id=None), "MissingParameter.ImageId"),
    (dict(instance_group_spec=None), "MissingParameter.InstanceGroupSpec"),
    (dict(instance_group_spec="acp.huge"), "InvalidParameter.InstanceGroupSpec"),
    (dict(number_of_instances=0), "InvalidParameter.NumberOfInstances"),
    (dict(number_of_instances=101), "InvalidParameter.NumberOfInstances"),
    (dict(number_of_instances=-1), "InvalidParameter.NumberOfInstances"),
    (dict(amount=0), "InvalidParameter.Amount"),
    (dict(amount=101), "InvalidParameter.Amount"),
    (dict(instance_group_name="1farm"), "InvalidParameter.InstanceGroupName"),
    (dict(instance_group_name="farm one"), "InvalidParameter.InstanceGroupName"),
    (dict(instance_group_name="a" * 31), "InvalidParameter.InstanceGroupName"),
    (dict(instance_group_name="http://farm"), "InvalidParameter.InstanceGroupName"),
    (dict(instance_group_name="farm/1"), "InvalidParameter.InstanceGroupName"),
    (dict(instance_group_name="-farm"), "InvalidParameter.InstanceGroupName"),
    (dict(charge_type="Free"), "InvalidParameter.ChargeType"),
])
def test_create_group_validation(client, kw, code):
    groups, instances = live_groups(client), live_instances(client)
    e = api_error(client.create_android_instance_group, create_request(**kw))
    assert (e.status_code, e.code) == (400, code)
    # A rejected call creates nothing.
    assert (live_groups(client), live_instances(client)) == (groups, instances)


def test_create_group_unknown_image(client):
    groups = live_groups(client)
    e = api_error(client.create_android_instance_group, create_request(image_id="imgc-doesnotexist00"))
    assert (e.status_code, e.code) == (404, "InvalidImageId.NotFound")
    assert live_groups(client) == groups


@pytest.mark.parametrize("name", ["a", "手机组", "Farm:1_2.3-4", "a" * 30, "中" * 30])
def test_create_group_names_accepted(client, name):
    r = client.create_android_instance_group(create_request(instance_group_name=name)).body
    gid = r.instance_group_ids[0]
    m = client.describe_android_instance_groups(models.DescribeAndroidInstanceGroupsRequest(
        instance_group_ids=[gid])).body.instance_group_model[0]
    assert m.instance_group_name == name
    client.delete_android_instance_group(models.DeleteAndroidInstanceGroupRequest(instance_group_ids=[gid]))


@pytest.mark.parametrize("field,bad", [("NumberOfInstances", "two"), ("NumberOfInstances", "1.5"),
                                       ("Amount", "1e2"), ("Amount", " 1")])
def test_create_group_malformed_numbers(client, field, bad):
    q = {"BizRegionId": "cn-hangzhou", "ImageId": "imgc-simandroid140000", "InstanceGroupSpec": "acp.basic.small",
         field: bad}
    groups = live_groups(client)
    e = api_error(call, client, "CreateAndroidInstanceGroup", q)
    assert (e.status_code, e.code) == (400, f"InvalidParameter.{field}")
    assert live_groups(client) == groups


# --- DescribeAndroidInstanceGroups ---

def test_describe_groups_filters_and_pages(client):
    name = unique("grp")
    gids = [create_group(client, 1, name=f"{name}-{k}")[0] for k in range(3)]
    by_name = client.describe_android_instance_groups(models.DescribeAndroidInstanceGroupsRequest(
        instance_group_name=name)).body
    assert by_name.total_count == 3
    # Newest first by default; ASC reverses.
    assert [m.instance_group_id for m in by_name.instance_group_model] == gids[::-1]
    asc = client.describe_android_instance_groups(models.DescribeAndroidInstanceGroupsRequest(
        instance_group_name=name, sort_type="ASC")).body
    assert [m.instance_group_id for m in asc.instance_group_model] == gids
    fuzzy = client.describe_android_instance_groups(models.DescribeAndroidInstanceGroupsRequest(
        instance_group_name=f"{name[3:]}-1")).body
    assert [m.instance_group_id for m in fuzzy.instance_group_model] == [gids[1]]
    two = client.describe_android_instance_groups(models.DescribeAndroidInstanceGroupsRequest(
        instance_group_ids=gids[:2])).body
    assert {m.instance_group_id for m in two.instance_group_model} == set(gids[:2])
    seen, token, pages = [], None, 0
    while True:
        r = client.describe_android_instance_groups(models.DescribeAndroidInstanceGroupsRequest(
            instance_group_name=name, max_results=1, next_token=token)).body
        pages += 1
        assert r.total_count == 3 and len(r.instance_group_model) == 1
        seen += [m.instance_group_id for m in r.instance_group_model]
        token = r.next_token
        if not token:
            break
    assert pages == 3 and seen == gids[::-1]
    for bad in (0, 101):
        e = api_error(client.describe_android_instance_groups,
                      models.DescribeAndroidInstanceGroupsRequest(max_results=bad))
        assert e.code == "InvalidParameter.MaxResults"
    e = api_error(client.describe_android_instance_groups,
                  models.DescribeAndroidInstanceGroupsRequest(instance_group_name=name, next_token="bogus"))
    assert e.code == "InvalidParameter.NextToken"


# --- DescribeAndroidInstances ---

def test_describe_instances_filters_and_pages(client):
    name = unique("ins")
    gid, ids = create_group(client, 3, name=name)
    gid2, ids2 = create_group(client, 1, name=name + "x")

    def listed(**kw):
        r = client.describe_android_instances(models.DescribeAndroidInstancesRequest(**kw)).body
        assert r.total_count == len(r.instance_model)
        return [m.android_instance_id for m in r.instance_model]

    assert set(listed(instance_group_id=gid)) == set(ids)
    assert set(listed(instance_group_ids=[gid, gid2])) == set(ids + ids2)
    assert set(listed(android_instance_ids=[ids[0], ids2[0]])) == {ids[0], ids2[0]}
    assert listed(android_instance_name=f"{name}-2") == [ids[1]]
    assert set(listed(android_instance_name=name)) == set(ids + ids2)
    assert set(listed(instance_group_name=name + "x")) == set(ids2)
    assert listed(android_instance_ids=["acp-0000000000000000"]) == []
    wait_batch(client, client.stop_android_instance(models.StopAndroidInstanceRequest(
        android_instance_ids=[ids[2]])).body.request_id)
    assert listed(instance_group_id=gid, status="STOPPED") == [ids[2]]
    assert set(listed(instance_group_id=gid, status="RUNNING")) == set(ids[:2])
    assert listed(instance_group_id=gid, biz_region_id="cn-beijing") == []
    # Pages of one, newest first, no duplicates or gaps.
    seen, token = [], None
    while True:
        r = client.describe_android_instances(models.DescribeAndroidInstancesRequest(
            instance_group_ids=[gid, gid2], max_results=1, next_token=token)).body
        assert r.total_count == 4 and len(r.instance_model) == 1
        seen.append(r.instance_model[0].android_instance_id)
        token = r.next_token
        if not token:
            break
    assert len(seen) == 4 and set(seen) == set(ids + ids2)
    assert seen[0] == ids2[0]  # the newest group's phone first
    asc = listed(instance_group_ids=[gid, gid2], sort_type="ASC", sort_key="CreationTime")
    assert asc[-1] == ids2[0]
    m = describe_instances(client, ids)[ids[0]]
    assert (m.android_instance_group_id, m.image_id, m.region_id) == (gid, "imgc-simandroid140000", "cn-hangzhou")
    assert ISO_RE.match(m.gmt_create)


def test_describe_instances_defaults_and_validation(client):
    r = client.describe_android_instances(models.DescribeAndroidInstancesRequest()).body
    assert len(r.instance_model) == min(r.total_count, 100)
    for kw, code in [(dict(max_results=0), "InvalidParameter.MaxResults"),
                     (dict(max_results=101), "InvalidParameter.MaxResults"),
                     (dict(status="SLEEPING"), "InvalidParameter.Status"),
                     (dict(sort_type="UP"), "InvalidParameter.SortType"),
                     (dict(next_token="nope"), "InvalidParameter.NextToken"),
                     (dict(charge_type="Free"), "InvalidParameter.ChargeType")]:
        e = api_error(client.describe_android_instances, models.DescribeAndroidInstancesRequest(**kw))
        assert (e.status_code, e.code) == (400, code)


# --- ModifyAndroidInstance ---

def test_rename_is_visible_in_listings_and_new_tasks(client):
    _, ids = create_group(client, 2, name=unique("ren"))
    a = ids[0]
    old_name = describe_instances(client, [a])[a].android_instance_name
    r1 = client.reboot_android_instances_in_group(models.RebootAndroidInstancesInGroupRequest(android_instance_ids=[a]))
    wait_batch(client, r1.body.request_id)
    new_name = unique("renamed")
    r = client.modify_android_instance(models.ModifyAndroidInstanceRequest(
        android_instance_id=a, new_android_instance_name=new_name)).body
    assert r.request_id
    assert describe_instances(client, [a])[a].android_instance_name == new_name
    r2 = client.reboot_android_instances_in_group(models.RebootAndroidInstancesInGroupRequest(android_instance_ids=[a]))
    new_task = tasks_of(client, invoke_id=r2.body.request_id, level=2)[0]
    assert new_task.instance_name == new_name
    # The older task keeps the name the phone had when the task was accepted.
    old_task = tasks_of(client, invoke_id=r1.body.request_id, level=2)[0]
    assert old_task.instance_name == old_name
    assert [t.task_id for t in tasks_of(client, instance_name=new_name)] == [new_task.task_id]
    assert new_task.task_id not in {t.task_id for t in tasks_of(client, instance_name=old_name)}
    wait_batch(client, r2.body.request_id)
    # Several at once through InstanceIds.
    client.modify_android_instance(models.ModifyAndroidInstanceRequest(
        instance_ids=ids, new_android_instance_name="same-name"))
    assert {m.android_instance_name for m in describe_instances(client, ids).values()} == {"same-name"}


def test_modify_validation(server, client):
    _, ids = create_group(client, 1, name=unique("mod"))
    name_before = describe_instances(client, ids)[ids[0]].android_instance_name
    for kw, code, status in [
        (dict(android_instance_id=ids[0], new_android_instance_name="9lives"), "InvalidParameter.NewAndroidInstanceName", 400),
        (dict(android_instance_id=ids[0], new_android_instance_name="x" * 31), "InvalidParameter.NewAndroidInstanceName", 400),
        (dict(android_instance_id=ids[0]), "MissingParameter.NewAndroidInstanceName", 400),
        (dict(new_android_instance_name="ok"), "MissingParameter.AndroidInstanceId", 400),
        (dict(android_instance_id="acp-0000000000000000", new_android_instance_name="ok"),
         "InvalidAndroidInstanceId.NotFound", 404),
        (dict(instance_ids=[ids[0], "acp-0000000000000000"], new_android_instance_name="ok"),
         "InvalidInstanceIds.NotFound", 404),
    ]:
        e = api_error(client.modify_android_instance, models.ModifyAndroidInstanceRequest(**kw))
        assert (e.status_code, e.code) == (status, code), kw
    assert describe_instances(client, ids)[ids[0]].android_instance_name == name_before
    other = server.client(key=server.create_key(unique("mod-other")))
    e = api_error(other.modify_android_instance, models.ModifyAndroidInstanceRequest(
        android_instance_id=ids[0], new_android_instance_name="stolen"))
    assert (e.status_code, e.code) == (404, "InvalidAndroidInstanceId.NotFound")
    assert describe_instances(client, ids)[ids[0]].android_instance_name == name_before


# --- DeleteAndroidInstanceGroup ---

def test_delete_group(server, client):
    gid, ids = create_group(client, 2, name=unique("del"))
    rb = client.reboot_android_instances_in_group(models.RebootAndroidInstancesInGroupRequest(android_instance_ids=ids))
    wait_batch(client, rb.body.request_id)
    body = call(client, "DeleteAndroidInstanceGroup", {"InstanceGroupIds.1": gid})
    assert set(body) == {"RequestId"}

    def gone():
        found = describe_instances(client, ids)
        return all(found[i].android_instance_status == "DELETED" for i in ids if i in found)
    wait_for(gone, what="instances DELETED")
    listed = client.describe_android_instance_groups(models.DescribeAndroidInstanceGroupsRequest(
        instance_group_ids=[gid])).body
    assert all(m.instance_group_status == "DELETED" for m in listed.instance_group_model)
    # Deleted phones are not found by the lifecycle calls, and nothing is created.
    for action in ("StartAndroidInstance", "StopAndroidInstance", "RebootAndroidInstancesInGroup",
                   "ResetAndroidInstancesInGroup"):
        e = api_error(call, client, action, {"AndroidInstanceIds.1": ids[0]})
        assert (e.status_code, e.code) == (404, "InvalidAndroidInstanceIds.NotFound")
    # The tasks of deleted phones stay listed; nothing new was added.
    kept = tasks_of(client, resource_ids=ids)
    assert {t.invoke_id for t in kept} == {rb.body.request_id} and len(kept) == 2
    assert all(t.task_status == "Finished" and t.instance_status in (None, "", "DELETED") for t in kept)
    assert len(tasks_of(client, invoke_id=rb.body.request_id)) == 3
    e = api_error(client.modify_android_instance, models.ModifyAndroidInstanceRequest(
        android_instance_id=ids[0], new_android_instance_name="ghost"))
    assert e.status_code == 404


def test_delete_group_validation(server, client):
    e = api_error(client.delete_android_instance_group, models.DeleteAndroidInstanceGroupRequest())
    assert (e.status_code, e.code) == (400, "MissingParameter.InstanceGroupIds")
    e = api_error(client.delete_android_instance_group, models.DeleteAndroidInstanceGroupRequest(
        instance_group_ids=["ag-0000000000000000"]))
    assert (e.status_code, e.code) == (404, "InvalidInstanceGroupIds.NotFound")
    gid, ids = create_group(client, 1, name=unique("keep"))
    # An unknown id next to a real one deletes nothing.
    e = api_error(client.delete_android_instance_group, models.DeleteAndroidInstanceGroupRequest(
        instance_group_ids=[gid, "ag-0000000000000000"]))
    assert e.code == "InvalidInstanceGroupIds.NotFound"
    other = server.client(key=server.create_key(unique("del-other")))
    e = api_error(other.delete_android_instance_group, models.DeleteAndroidInstanceGroupRequest(
        instance_group_ids=[gid]))
    assert (e.status_code, e.code) == (404, "InvalidInstanceGroupIds.NotFound")
    g = client.describe_android_instance_groups(models.DescribeAndroidInstanceGroupsRequest(
        instance_group_ids=[gid])).body.instance_group_model[0]
    assert g.instance_group_status == "RUNNING"
    assert describe_instances(client, ids)[ids[0]].android_instance_status == "RUNNING"
    e = api_error(call, client, "DeleteAndroidInstanceGroup",
                  {"InstanceGroupIds.1": gid, "InstanceGroupIds.3": "ag-0000000000000000"})
    assert (e.status_code, e.code) == (400, "InvalidParameter.InstanceGroupIds")


def test_rename_to_cjk_and_filter_tasks_by_it(client):
    _, ids = create_group(client, 1, name=unique("cjk"))
    name = "手机" + uuid.uuid4().hex[:6] + "-七"
    client.modify_android_instance(models.ModifyAndroidInstanceRequest(
        instance_ids=ids, new_android_instance_name=name))
    r = client.reboot_android_instances_in_group(models.RebootAndroidInstancesInGroupRequest(android_instance_ids=ids))
    got = tasks_of(client, instance_name=name[1:])
    assert [t.invoke_id for t in got] == [r.body.request_id]
    assert got[0].instance_name == name
    found = client.describe_android_instances(models.DescribeAndroidInstancesRequest(
        android_instance_name=name[2:])).body
    assert [m.android_instance_id for m in found.instance_model] == ids
    wait_batch(client, r.body.request_id)


def test_modify_bandwidth(client):
    _, ids = create_group(client, 1, name=unique("bw"))
    client.modify_android_instance(models.ModifyAndroidInstanceRequest(
        android_instance_id=ids[0], up_bandwidth_limit=10, down_bandwidth_limit=20))
    m = describe_instances(client, ids)[ids[0]]
    assert (m.up_bandwidth_limit, m.down_bandwidth_limit) == (10, 20)
    assert m.android_instance_name.startswith("bw")


def test_delete_twice(client):
    gid, ids = create_group(client, 1, name=unique("del2"))
    client.delete_android_instance_group(models.DeleteAndroidInstanceGroupRequest(instance_group_ids=[gid]))
    try:
        client.delete_android_instance_group(models.DeleteAndroidInstanceGroupRequest(instance_group_ids=[gid]))
        raise AssertionError("a group being deleted was deleted again")
    except Exception as e:  # 409 while deleting, or 404 once deleted
        assert getattr(e, "code", None) in ("IncorrectStatus", "InvalidInstanceGroupIds.NotFound"), e
    def gone():
        # One call: the group may vanish between two.
        found = client.describe_android_instance_groups(models.DescribeAndroidInstanceGroupsRequest(
            instance_group_ids=[gid])).body.instance_group_model
        return not found or found[0].instance_group_status == "DELETED"
    wait_for(gone)
    wait_for(lambda: all(m.android_instance_status == "DELETED" for m in describe_instances(client, ids).values()))
    e = api_error(client.delete_android_instance_group, models.DeleteAndroidInstanceGroupRequest(
        instance_group_ids=[gid]))
    assert (e.status_code, e.code) == (404, "InvalidInstanceGroupIds.NotFound")


def test_raw_types_of_groups_and_instances(client):
    gid, ids = create_group(client, 1, name=unique("raw"))
    g = call(client, "DescribeAndroidInstanceGroups", {"InstanceGroupIds.1": gid})
    assert isinstance(g["TotalCount"], int)
    m = g["InstanceGroupModel"][0]
    # The SDK types these as strings (api-contract.md §6).
    assert isinstance(m["NumberOfInstances"], str) and m["NumberOfInstances"] == "1"
    assert isinstance(m["Cpu"], str) and isinstance(m["Memory"], int)
    i = call(client, "DescribeAndroidInstances", {"AndroidInstanceIds.1": ids[0]})
    assert isinstance(i["TotalCount"], int)
    m = i["InstanceModel"][0]
    assert isinstance(m["Cpu"], str) and isinstance(m["Memory"], int)
    assert m["AndroidInstanceId"] == ids[0] and m["AndroidInstanceStatus"] == "RUNNING"
    img = call(client, "DescribeImageList", body={"ImageType": "System"})
    assert isinstance(img["TotalCount"], int) and len(img["Data"]) == 2


# --- filters on things this server's phones never have: they must narrow, not be ignored ---

@pytest.mark.parametrize("kw", [
    dict(key_pair_id="kp-1"), dict(authorized_user_id="u-1"), dict(node_id="n-1"), dict(node_name="matrix"),
    dict(private_ip_address="10.0.0.1"), dict(app_manage_policy_id="pg-1"), dict(office_site_ids=["os-1"]),
    dict(qos_rule_ids=["qr-1"]), dict(instance_version="EnterpriseAi"), dict(sale_mode="Node"),
])
def test_describe_instances_absent_features_match_nothing(client, kw):
    gid, ids = create_group(client, 1, name=unique("abs"))
    r = client.describe_android_instances(models.DescribeAndroidInstancesRequest(instance_group_id=gid, **kw)).body
    assert (r.total_count, r.instance_model) == (0, []), kw
    # The matching value of the same filter keeps the phone.
    if "instance_version" in kw:
        kw = dict(instance_version="basic")
    elif "sale_mode" in kw:
        kw = dict(sale_mode="Instance")
    else:
        return
    r = client.describe_android_instances(models.DescribeAndroidInstancesRequest(instance_group_id=gid, **kw)).body
    assert [m.android_instance_id for m in r.instance_model] == ids


@pytest.mark.parametrize("kw", [
    dict(key_pair_id="kp-1"), dict(policy_group_id="pg-1"), dict(instance_version="EnterpriseAi"),
    dict(sale_mode="Node"),
])
def test_describe_groups_absent_features_match_nothing(client, kw):
    gid, _ = create_group(client, 1, name=unique("gabs"))
    r = client.describe_android_instance_groups(models.DescribeAndroidInstanceGroupsRequest(
        instance_group_ids=[gid], **kw)).body
    assert (r.total_count, r.instance_group_model) == (0, []), kw


def test_describe_groups_filters_by_status_charge_type_and_tags(client):
    name = unique("gflt")
    tagged = client.create_android_instance_group(create_request(
        instance_group_name=name, charge_type="PrePaid",
        tag=[models.CreateAndroidInstanceGroupRequestTag(key="team", value="qa")])).body.instance_group_ids[0]
    plain = client.create_android_instance_group(create_request(instance_group_name=name)).body.instance_group_ids[0]
    wait_for(lambda: {m.instance_group_status for m in client.describe_android_instance_groups(
        models.DescribeAndroidInstanceGroupsRequest(instance_group_name=name)).body.instance_group_model} == {"RUNNING"})

    def listed(**kw):
        r = client.describe_android_instance_groups(models.DescribeAndroidInstanceGroupsRequest(
            instance_group_name=name, **kw)).body
        assert r.total_count == len(r.instance_group_model)
        return {m.instance_group_id for m in r.instance_group_model}
    assert listed() == {tagged, plain}
    assert listed(charge_type="PrePaid") == {tagged}
    assert listed(charge_type="PostPaid") == {plain}
    assert listed(status="RUNNING") == {tagged, plain}
    assert listed(status="DELETED") == set()
    assert listed(tags=[models.DescribeAndroidInstanceGroupsRequestTags(key="team", value="qa")]) == {tagged}
    assert listed(tags=[models.DescribeAndroidInstanceGroupsRequestTags(key="team", value="dev")]) == set()


def test_describe_instances_tag_filter_is_not_ignored(client):
    name = unique("itag")
    r = client.create_android_instance_group(create_request(
        instance_group_name=name, tag=[models.CreateAndroidInstanceGroupRequestTag(key="team", value="qa")])).body
    gid, ids = r.instance_group_ids[0], r.instance_group_infos[0].instance_ids
    plain, _ = create_group(client, 1, name=name + "p")

    def listed(key, value):
        return {m.android_instance_id for m in client.describe_android_instances(models.DescribeAndroidInstancesRequest(
            instance_group_name=name, tag=[models.DescribeAndroidInstancesRequestTag(key=key, value=value)])).body.instance_model}
    assert listed("nobody", "has-this") == set()
    # Whatever tags phones carry, a phone of the untagged group never matches the group's tag.
    assert listed("team", "qa") <= set(ids)


def test_instances_of_a_prepaid_group_are_prepaid(client):
    r = client.create_android_instance_group(create_request(charge_type="PrePaid", instance_group_name=unique("pre"))).body
    gid, ids = r.instance_group_ids[0], r.instance_group_infos[0].instance_ids
    g = client.describe_android_instance_groups(models.DescribeAndroidInstanceGroupsRequest(
        instance_group_ids=[gid])).body.instance_group_model[0]
    assert g.charge_type == "PrePaid"
    assert describe_instances(client, ids)[ids[0]].charge_type == "PrePaid"
    r = client.describe_android_instances(models.DescribeAndroidInstancesRequest(
        instance_group_id=gid, charge_type="PrePaid")).body
    assert [m.android_instance_id for m in r.instance_model] == ids
    r = client.describe_android_instances(models.DescribeAndroidInstancesRequest(
        instance_group_id=gid, charge_type="PostPaid")).body
    assert r.instance_model == []
