"""CreateScreenshot and UpdateInstanceGroupImage through the official SDK: real PNGs at the
phone's resolution drawn from its state, and groups moved onto another image."""

import json
import struct
import zlib

import requests
from urllib.parse import parse_qs, urlsplit
from alibabacloud_eds_aic20230930 import models

from conftest import (api_error, clear_faults, create_group, describe_instances, inject_fault, tasks_of,
                      wait_batch)

ANDROID_12 = "imgc-simandroid120000"
ANDROID_14 = "imgc-simandroid140000"


def decode_png(data):
    """(width, height, raw scanlines) of an 8-bit RGB PNG, checked chunk by chunk."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, size = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        assert struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0] == zlib.crc32(kind + body)
        if kind == b"IHDR":
            w, h, depth, color = struct.unpack(">IIBB", body[:10])
            assert (depth, color) == (8, 2)
            size = (w, h)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    w, h = size
    assert len(raw) == h * (1 + 3 * w)
    return w, h, raw


def screenshot(client, ids, **kw):
    r = client.create_screenshot(models.CreateScreenshotRequest(android_instance_id_list=ids, **kw)).body
    wait_batch(client, r.request_id)
    return r, {t.instance_id: t for t in tasks_of(client, invoke_id=r.request_id, level=2)}


def run(client, ids, command):
    r = client.run_command(models.RunCommandRequest(instance_ids=ids, command_content=command)).body
    wait_batch(client, r.invoke_id)


def test_screenshots_are_real_pngs_of_the_phone(client):
    _, ids = create_group(client, 2, name="shots")
    r, tasks = screenshot(client, ids, screenshot_id="home")
    assert {(t.android_instance_id, t.screenshot_id) for t in r.tasks} == {(i, "home") for i in ids}
    assert {t.task_id for t in r.tasks} == {t.task_id for t in tasks.values()}
    found = tasks_of(client, task_type="Screenshot", invoke_id=r.request_id)
    assert len(found) == 3  # the batch and its two children
    homes = {}
    for instance, t in tasks.items():
        assert t.task_status == "Finished", t.error_msg
        result = json.loads(t.result)
        assert result["OssPath"].endswith(f"/home_{instance}.png")
        w, h, raw = decode_png(requests.get(result["Url"], timeout=10).content)
        assert (w, h) == (720, 1280)
        homes[instance] = raw
    # The phone's name is drawn, so two phones' home screens differ.
    assert homes[ids[0]] != homes[ids[1]]
    # With an app in front, the screen changes.
    run(client, ids[:1], "am start -n com.android.settings/.Settings")
    _, tasks = screenshot(client, ids[:1], screenshot_id="settings")
    _, _, raw = decode_png(requests.get(json.loads(tasks[ids[0]].result)["Url"], timeout=10).content)
    assert raw != homes[ids[0]]


def test_screenshot_refusals(client, server):
    _, ids = create_group(client, 2, name="shotbad")
    client.stop_android_instance(models.StopAndroidInstanceRequest(android_instance_ids=ids[:1]))
    r, tasks = screenshot(client, ids)
    assert (tasks[ids[0]].task_status, tasks[ids[0]].error_code) == ("Failed", "IncorrectInstanceStatus")
    assert tasks[ids[1]].task_status == "Finished"
    assert describe_instances(client, ids[:1])[ids[0]].android_instance_status == "STOPPED"
    for bad in ("1abc", "a", "a b", "x" * 129):
        e = api_error(client.create_screenshot, models.CreateScreenshotRequest(
            android_instance_id_list=ids[1:], screenshot_id=bad))
        assert e.code == "InvalidParameter.ScreenshotId"
    e = api_error(client.create_screenshot, models.CreateScreenshotRequest(android_instance_id_list=[]))
    assert e.code == "MissingParameter.AndroidInstanceIdList"
    # Another account's bucket name is this one's too: each screenshot lands in its own account's.
    other = server.client(key=server.create_key("shot-other"))
    _, theirs = create_group(other, 1, name="theirs")
    _, their_shot = screenshot(other, theirs, oss_bucket_name="cloudphone-saved-bucket-theirs")
    _, my_shot = screenshot(client, ids[1:], oss_bucket_name="cloudphone-saved-bucket-theirs")
    (mine,), (their,) = my_shot.values(), their_shot.values()
    assert mine.task_status == their.task_status == "Finished"
    mine, their = json.loads(mine.result)["Url"], json.loads(their.result)["Url"]
    for url in (mine, their):
        decode_png(requests.get(url, timeout=10).content)
    account = lambda url: parse_qs(urlsplit(url).query)["Account"]
    assert account(mine) != account(their)
    # My link re-pointed at the other account's namespace opens nothing.
    swapped = mine.replace(f"Account={account(mine)[0]}", f"Account={account(their)[0]}")
    assert requests.get(swapped, timeout=10).status_code == 403


def release(client, instance):
    r = client.run_command(models.RunCommandRequest(instance_ids=[instance],
                                                    command_content="getprop ro.build.version.release")).body
    wait_batch(client, r.invoke_id)
    (t,) = tasks_of(client, invoke_id=r.invoke_id, level=2)
    return json.loads(t.result)["Output"].strip()


def group_model(client, group):
    r = client.describe_android_instance_groups(models.DescribeAndroidInstanceGroupsRequest(instance_group_ids=[group]))
    (g,) = r.body.instance_group_model
    return g


def test_a_group_moves_to_another_image(client):
    group, ids = create_group(client, 3, name="images")
    assert release(client, ids[0]) == "14"
    r = client.update_instance_group_image(models.UpdateInstanceGroupImageRequest(
        image_id=ANDROID_12, instance_group_ids=[group])).body
    (batch,) = tasks_of(client, invoke_id=r.request_id, level=1)
    assert (batch.task_type, batch.resource_id, batch.total_child_count) == ("UpdateGroupImage", group, 3)
    assert group_model(client, group).image_id == ANDROID_12
    batch = wait_batch(client, r.request_id)
    assert batch.task_status == "Finished"
    assert [t.task_id for t in tasks_of(client, task_type="UpdateGroupImage", parent_task_id=batch.task_id)]
    for instance, m in describe_instances(client, ids).items():
        assert (m.image_id, m.android_instance_status) == (ANDROID_12, "RUNNING")
        assert release(client, instance) == "12"
    assert group_model(client, group).instance_group_status == "RUNNING"


def test_a_failed_image_update_shows_on_the_group(client):
    group, ids = create_group(client, 2, name="imgfail")
    inject_fault(client, ids[1], "UpdateGroupImage", error_code="OperationFailed", error_msg="disk full")
    try:
        r = client.update_instance_group_image(models.UpdateInstanceGroupImageRequest(
            image_id=ANDROID_12, instance_group_ids=[group])).body
        batch = wait_batch(client, r.request_id)
    finally:
        clear_faults(client)
    assert (batch.task_status, batch.success_child_count, batch.failed_child_count) == ("PartFinished", 1, 1)
    children = {t.instance_id: t for t in tasks_of(client, parent_task_id=batch.task_id)}
    assert (children[ids[1]].error_code, children[ids[1]].error_msg) == ("OperationFailed", "disk full")
    models_ = describe_instances(client, ids)
    assert (models_[ids[0]].image_id, models_[ids[0]].android_instance_status) == (ANDROID_12, "RUNNING")
    assert (models_[ids[1]].image_id, models_[ids[1]].android_instance_status) == (ANDROID_14, "UNAVAILABLE")
    assert group_model(client, group).instance_group_status == "UPDATING_FAILED"


def test_image_update_refusals(client):
    group, _ = create_group(client, 1, name="imgbad")
    e = api_error(client.update_instance_group_image, models.UpdateInstanceGroupImageRequest(
        image_id="imgc-doesnotexist0000", instance_group_ids=[group]))
    assert (e.status_code, e.code) == (404, "InvalidImageId.NotFound")
    e = api_error(client.update_instance_group_image, models.UpdateInstanceGroupImageRequest(
        image_id=ANDROID_12, instance_group_ids=["ag-0000000000000000"]))
    assert (e.status_code, e.code) == (404, "InvalidInstanceGroupIds.NotFound")
    e = api_error(client.update_instance_group_image, models.UpdateInstanceGroupImageRequest(image_id=ANDROID_12))
    assert e.code == "MissingParameter.InstanceGroupIds"
    e = api_error(client.update_instance_group_image, models.UpdateInstanceGroupImageRequest(instance_group_ids=[group]))
    assert e.code == "MissingParameter.ImageId"
