"""Scaling a group and the farm's stock, through the official SDK: UpgradeAndroidInstanceGroup adds
phones named on after the group's, DowngradeAndroidInstanceGroup deletes exactly the phones named,
DescribeSpec lists the specs and what is left of each. Every server here holds 10 simulated phones
(`--sim-capacity-phones 10`): a creation past that is `403 OperationDenied.NoStock` and creates
nothing, and the quota is checked before the stock."""

import time
import uuid

import pytest
from alibabacloud_eds_aic20230930 import models

from conftest import Server, api_error, call, create_group, describe_instances, wait_for

CAPACITY = 10
IMAGE = "imgc-simandroid140000"


def unique(prefix):
    return f"{prefix}{uuid.uuid4().hex[:6]}"


@pytest.fixture
def farm(workdir):
    """A server of its own (the farm's room is each test's), quota 12 per account."""
    s = Server(workdir / unique("scaling-"), extra_args=[
        "--sim-capacity-phones", str(CAPACITY), "--instance-quota", "12"]).start()
    yield s
    s.stop()


def create(client, n, name="farm", amount=None):
    return client.create_android_instance_group(models.CreateAndroidInstanceGroupRequest(
        biz_region_id="cn-hangzhou", image_id=IMAGE, instance_group_spec="acp.basic.small",
        number_of_instances=n, instance_group_name=name, amount=amount))


def upgrade(client, group, n):
    return client.upgrade_android_instance_group(models.UpgradeAndroidInstanceGroupRequest(
        instance_group_id=group, increase_number_of_instance=n))


def downgrade(client, group, ids):
    return client.downgrade_android_instance_group(models.DowngradeAndroidInstanceGroupRequest(
        instance_group_id=group, android_instance_ids=ids))


def live_phones(client):
    """Every phone of the caller not DELETED: id -> model."""
    r = client.describe_android_instances(models.DescribeAndroidInstancesRequest(max_results=100)).body
    return {m.android_instance_id: m for m in r.instance_model if m.android_instance_status != "DELETED"}


def groups(client):
    r = client.describe_android_instance_groups(models.DescribeAndroidInstanceGroupsRequest(max_results=100)).body
    return {g.instance_group_id: g for g in r.instance_group_model}


def specs(client, **filters):
    return client.describe_spec(models.DescribeSpecRequest(**filters)).body


def wait_running(client, ids):
    wait_for(lambda: len(describe_instances(client, ids)) == len(ids) and all(
        m.android_instance_status == "RUNNING" for m in describe_instances(client, ids).values()),
        what="phones RUNNING")


def deleted(client, ids):
    """The phones among `ids` that are DELETED (listed only when asked for by that status)."""
    r = client.describe_android_instances(models.DescribeAndroidInstancesRequest(
        android_instance_ids=ids, status="DELETED", max_results=100)).body
    return {m.android_instance_id for m in r.instance_model}


def wait_deleted(client, ids):
    wait_for(lambda: deleted(client, ids) == set(ids), what="phones DELETED")


def assert_no_stock(e, asked, fits):
    assert (e.status_code, e.code) == (403, "OperationDenied.NoStock"), (e.status_code, e.code)
    assert f"room for {fits} more phones of acp.basic.small, {asked} were asked" in e.message, e.message
    assert "Nothing was created" in e.message


def test_upgrade_adds_phones_named_after_the_groups(farm):
    client = farm.client()
    gid, first = create_group(client, 2, name="grow")
    r = upgrade(client, gid, 3).body
    assert len(r.instance_ids) == 3 and len(set(r.instance_ids)) == 3
    assert r.order_id == r.request_id
    found = describe_instances(client, r.instance_ids)
    assert sorted(m.android_instance_name for m in found.values()) == ["grow-3", "grow-4", "grow-5"]
    assert all(m.android_instance_status in ("CREATING", "RUNNING") for m in found.values())
    assert all(m.android_instance_group_id == gid for m in found.values())
    wait_running(client, r.instance_ids)
    # The group's image, spec and charge type.
    found = describe_instances(client, r.instance_ids)
    assert all(m.image_id == IMAGE and m.instance_type == "acp.basic.small" for m in found.values())
    assert groups(client)[gid].number_of_instances == "5"
    # Numbering goes on after the highest, not after how many there are.
    downgrade(client, gid, [first[0]])
    wait_deleted(client, [first[0]])
    r = upgrade(client, gid, 1).body
    assert describe_instances(client, r.instance_ids)[r.instance_ids[0]].android_instance_name == "grow-6"
    # A ClientToken makes it idempotent: the repeat answers the first call and adds nothing.
    ask = {"InstanceGroupId": gid, "IncreaseNumberOfInstance": "1", "ClientToken": unique("once-")}
    once = call(client, "UpgradeAndroidInstanceGroup", ask)
    assert call(client, "UpgradeAndroidInstanceGroup", ask) == once
    assert len(live_phones(client)) == 6


def test_upgrade_rejects_bad_input(farm):
    client = farm.client()
    gid, _ = create_group(client, 1, name="bad")
    e = api_error(client.upgrade_android_instance_group, models.UpgradeAndroidInstanceGroupRequest(
        increase_number_of_instance=1))
    assert (e.status_code, e.code) == (400, "MissingParameter.InstanceGroupId")
    e = api_error(client.upgrade_android_instance_group, models.UpgradeAndroidInstanceGroupRequest(
        instance_group_id=gid))
    assert (e.status_code, e.code) == (400, "MissingParameter.IncreaseNumberOfInstance")
    for n in (0, 101):
        e = api_error(upgrade, client, gid, n)
        assert (e.status_code, e.code) == (400, "InvalidParameter.IncreaseNumberOfInstance"), n
    e = api_error(call, client, "UpgradeAndroidInstanceGroup",
                  {"InstanceGroupId": gid, "IncreaseNumberOfInstance": "x"})
    assert (e.status_code, e.code) == (400, "InvalidParameter.IncreaseNumberOfInstance")
    e = api_error(call, client, "UpgradeAndroidInstanceGroup",
                  {"InstanceGroupId": gid, "IncreaseNumberOfInstance": "1", "AutoPay": "maybe"})
    assert (e.status_code, e.code) == (400, "InvalidParameter.AutoPay")
    e = api_error(upgrade, client, "ag-0000000000000000", 1)
    assert (e.status_code, e.code) == (404, "InvalidInstanceGroupId.NotFound")
    other = farm.client(key=farm.create_key(unique("other-")))
    e = api_error(upgrade, other, gid, 1)
    assert (e.status_code, e.code) == (404, "InvalidInstanceGroupId.NotFound")
    assert len(live_phones(client)) == 1 and live_phones(other) == {}


def test_upgrading_a_deleting_group_is_refused(workdir):
    # Slow phones: the group stays DELETING long enough to be asked.
    s = Server(workdir / unique("scaling-slow-"), sim_delay_ms=1500,
               extra_args=["--sim-capacity-phones", str(CAPACITY)]).start()
    try:
        client = s.client()
        gid = create(client, 2, name="going").body.instance_group_ids[0]
        call(client, "DeleteAndroidInstanceGroup", {"InstanceGroupIds.1": gid})
        e = api_error(upgrade, client, gid, 1)
        assert (e.status_code, e.code) == (409, "IncorrectStatus"), (e.status_code, e.code)
        assert len(live_phones(client)) <= 2
        assert all(m.android_instance_status in ("CREATING", "DELETING", "RUNNING")
                   for m in live_phones(client).values())
    finally:
        s.stop()


def test_a_farm_without_room_creates_nothing(farm):
    client = farm.client()
    # Eleven phones on an empty farm of ten: nothing, in one group or in several.
    assert_no_stock(api_error(create, client, CAPACITY + 1), CAPACITY + 1, CAPACITY)
    assert_no_stock(api_error(create, client, 6, amount=2), 12, CAPACITY)
    assert groups(client) == {} and live_phones(client) == {}
    # A group of one, then an upgrade past the room: nothing; up to the room: everything.
    gid, _ = create_group(client, 1, name="full")
    assert_no_stock(api_error(upgrade, client, gid, CAPACITY), CAPACITY, CAPACITY - 1)
    assert len(live_phones(client)) == 1
    r = upgrade(client, gid, CAPACITY - 1).body
    wait_running(client, r.instance_ids)
    assert len(live_phones(client)) == CAPACITY
    # Full: another account's creation gets nothing either (the room is the farm's).
    other = farm.client(key=farm.create_key(unique("late-")))
    assert_no_stock(api_error(create, other, 1), 1, 0)
    assert groups(other) == {}
    assert_no_stock(api_error(upgrade, client, gid, 1), 1, 0)
    sold = specs(client)
    assert {s.spec_status for s in sold.spec_info_model} == {"SoldOut"}
    assert {s.max_phone_count for s in sold.spec_info_model} == {"0"}
    assert [s.spec_id for s in specs(client, spec_status="SoldOut").spec_info_model] == [
        s.spec_id for s in sold.spec_info_model]
    assert specs(client, spec_status="Available").spec_info_model == []
    # Phones deleted give their room back.
    freed = list(live_phones(client))[:2]
    downgrade(client, gid, freed)
    wait_deleted(client, freed)
    small = specs(client, spec_ids=["acp.basic.small"]).spec_info_model[0]
    assert (small.spec_status, small.max_phone_count) == ("Available", "2")
    r = create(other, 2, name="late").body
    wait_running(other, r.instance_group_infos[0].instance_ids)


def test_the_quota_is_checked_before_the_stock(farm):
    client = farm.client(key=farm.create_key(unique("quota-")))
    gid, _ = create_group(client, 8, name="q")
    # 13 > the quota of 12 (and past the farm's room too): the quota answers.
    e = api_error(upgrade, client, gid, 5)
    assert (e.status_code, e.code) == (400, "QuotaExceeded.Instances")
    # 11 is within the quota but not the room.
    assert_no_stock(api_error(upgrade, client, gid, 3), 3, 2)
    assert len(live_phones(client)) == 8
    r = upgrade(client, gid, 2).body
    assert len(r.instance_ids) == 2
    e = api_error(create, client, 5, name="q2")
    assert (e.status_code, e.code) == (400, "QuotaExceeded.Instances")


def test_downgrade_deletes_exactly_the_phones_named(farm):
    client = farm.client()
    gid, ids = create_group(client, 4, name="shrink")
    other_gid, other_ids = create_group(client, 2, name="beside")
    r = downgrade(client, gid, [ids[0], ids[2], ids[0]]).body  # a duplicate counts once
    assert r.order_id == r.request_id
    wait_deleted(client, [ids[0], ids[2]])
    assert deleted(client, ids + other_ids) == {ids[0], ids[2]}
    found = describe_instances(client, ids + other_ids)
    assert all(found[i].android_instance_status == "RUNNING" for i in (ids[1], ids[3], *other_ids))
    # The rest, and the group stays, empty.
    downgrade(client, gid, [ids[1], ids[3]])
    wait_deleted(client, ids)
    kept = groups(client)
    assert gid in kept and kept[gid].instance_group_status != "DELETED"
    assert set(live_phones(client)) == set(other_ids)
    # An empty group grows again.
    r = upgrade(client, gid, 1).body
    wait_running(client, r.instance_ids)


def test_downgrade_fails_whole_on_a_phone_not_of_the_group(farm):
    client = farm.client()
    gid, ids = create_group(client, 2, name="mine")
    other_gid, other_ids = create_group(client, 1, name="theirs")
    stranger = farm.client(key=farm.create_key(unique("stranger-")))
    _, stranger_ids = create_group(stranger, 1, name="far")
    for foreign in (other_ids[0], stranger_ids[0], "acp-0000000000000000"):
        e = api_error(downgrade, client, gid, [ids[0], foreign])
        assert (e.status_code, e.code) == (404, "InvalidAndroidInstanceIds.NotFound"), foreign
        assert foreign in e.message
    e = api_error(downgrade, stranger, gid, [ids[0]])
    assert (e.status_code, e.code) == (404, "InvalidInstanceGroupId.NotFound")
    e = api_error(downgrade, client, "ag-0000000000000000", [ids[0]])
    assert (e.status_code, e.code) == (404, "InvalidInstanceGroupId.NotFound")
    e = api_error(client.downgrade_android_instance_group, models.DowngradeAndroidInstanceGroupRequest(
        instance_group_id=gid))
    assert (e.status_code, e.code) == (400, "MissingParameter.AndroidInstanceIds")
    e = api_error(client.downgrade_android_instance_group, models.DowngradeAndroidInstanceGroupRequest(
        android_instance_ids=[ids[0]]))
    assert (e.status_code, e.code) == (400, "MissingParameter.InstanceGroupId")
    e = api_error(downgrade, client, gid, [f"acp-{n:016d}" for n in range(101)])
    assert (e.status_code, e.code) == (400, "InvalidParameter.AndroidInstanceIds")
    # Nothing changed anywhere (a deletion queued would have run by now).
    time.sleep(0.5)
    found = describe_instances(client, ids + other_ids)
    assert all(m.android_instance_status == "RUNNING" for m in found.values())
    assert live_phones(stranger).keys() == set(stranger_ids)


def test_describe_spec_lists_the_specs(farm):
    client = farm.client()
    body = specs(client)
    assert body.total_count == 3 and body.next_token is None
    by_id = {s.spec_id: s for s in body.spec_info_model}
    assert set(by_id) == {"acp.basic.small", "acp.std.large", "acp.perf.large"}
    small = by_id["acp.basic.small"]
    assert (small.core, small.memory, small.resolution, small.system_disk_size, small.spec_type) == (
        2, 4, "720*1280", 32, "basic")
    assert (small.phone_count, small.min_phone_count, small.max_phone_count, small.spec_status) == (
        "1", "1", str(CAPACITY), "Available")
    perf = by_id["acp.perf.large"]
    assert (perf.core, perf.memory, perf.resolution, perf.system_disk_size, perf.spec_type) == (
        8, 16, "1080*1920", 128, "perf")
    # Filters.
    got = specs(client, spec_ids=["acp.std.large", "acp.nothing"]).spec_info_model
    assert [s.spec_id for s in got] == ["acp.std.large"]
    assert [s.spec_id for s in specs(client, spec_type="perf").spec_info_model] == ["acp.perf.large"]
    assert specs(client, spec_type="basic", spec_ids=["acp.perf.large"]).spec_info_model == []
    assert specs(client, biz_region_id="cn-hangzhou", charge_type="PostPaid",
                 sale_mode="Instance").total_count == 3


def test_describe_spec_pages_and_refuses_bad_input(farm):
    client = farm.client()
    seen, token = [], None
    for _ in range(3):
        body = specs(client, max_results=1, next_token=token)
        assert body.total_count == 3 and len(body.spec_info_model) == 1
        seen.append(body.spec_info_model[0].spec_id)
        token = body.next_token
    assert token is None and len(set(seen)) == 3
    first = specs(client, max_results=1).next_token
    assert first
    # A token is bound to the filters it was issued for, and cannot be altered.
    e = api_error(specs, client, max_results=1, next_token=first, spec_type="basic")
    assert (e.status_code, e.code) == (400, "InvalidParameter.NextToken")
    tampered = first[:-2] + ("AA" if first[-2:] != "AA" else "BB")
    e = api_error(specs, client, max_results=1, next_token=tampered)
    assert (e.status_code, e.code) == (400, "InvalidParameter.NextToken")
    for filters, name in (
            ({"max_results": 0}, "MaxResults"), ({"max_results": 101}, "MaxResults"),
            ({"spec_type": "huge"}, "SpecType"), ({"spec_status": "Gone"}, "SpecStatus"),
            ({"charge_type": "Free"}, "ChargeType"), ({"sale_mode": "Bulk"}, "SaleMode"),
            ({"biz_region_id": "cn-beijing"}, "BizRegionId")):
        e = api_error(specs, client, **filters)
        assert (e.status_code, e.code) == (400, f"InvalidParameter.{name}"), filters
    e = api_error(call, client, "DescribeSpec", {"MaxResults": "x"})
    assert (e.status_code, e.code) == (400, "InvalidParameter.MaxResults")
