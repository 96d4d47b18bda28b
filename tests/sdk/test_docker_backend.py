"""The docker backend through the official SDK: phones are real containers on a real Docker
engine (a private `dockerd` that scripts/test starts), their in-phone work goes over a real ADB
server (Debian's `adb`, on a private port) to the container's adbd.

No Android can run on our machines: the phone image is a busybox root file system with the TEST
FIXTURE tests/fixtures/test-adbd as its adbd (the device side of the ADB protocol, and stand-ins
for pm, am, monkey, getprop and screencap). See tests/fixtures/phone-image/build."""

import contextlib
import json
import os
import random
import uuid

import pytest
import requests
from alibabacloud_eds_aic20230930 import models

from conftest import (DOCKER_HOST, Server, api_error, describe_instances, docker, tasks_of, wait_batch, wait_for)
from conftest import instance_status as status
from conftest import run_shell as sh
from test_apps import make_apk
from test_files import cp
from test_screens_and_images import decode_png

ANDROID_12 = "imgc-testphone12"
ANDROID_13 = "imgc-testphone13"
ROOTED = "imgc-testphoneroot"
BUCKET = "cloudphone-saved-bucket-docker"
ENDPOINT = "oss-cn-hangzhou.aliyuncs.com"


@pytest.fixture(scope="module")
def fleet(workdir, phone_image, adb_server):
    """A server whose backends file runs two test-phone images on the Docker engine, reached
    through a private ADB server; everything it made is removed at the end."""
    with docker_fleet(workdir / "docker", phone_image, adb_server) as f:
        yield f


@contextlib.contextmanager
def docker_fleet(data_dir, phone_image, adb_port, extra_args=(), extra_config=""):
    """The server of `fleet` in `data_dir`, with `extra_args` (test_adb_gateway.py adds the
    ADB gateway's flags) and `extra_config` at the end of its backends file
    (test_docker_screen.py adds `[scrcpy]`)."""
    prefix = f"cpt{uuid.uuid4().hex[:8]}-"
    # Below Linux's ephemeral ports (32768-60999), which outgoing connections take.
    base = random.randrange(20000, 32000, 100)
    config = data_dir.parent / f"{data_dir.name}-backends.toml"
    config.write_text(f"""
[adb]
port = {adb_port}

[docker]
socket = "{DOCKER_HOST}"
network = "host"
adb_ports = "{base}-{base + 99}"
boot_timeout_secs = 60
stop_timeout_secs = 2
name_prefix = "{prefix}"

[[docker.images]]
id = "{ANDROID_12}"
name = "Test phone, Android 12"
reference = "{phone_image}"
env = ["ADBD_PORT={{adb_port}}"]

[[docker.images]]
id = "{ANDROID_13}"
name = "Test phone, Android 13"
android_version = "13"
reference = "{phone_image}"
env = ["ADBD_PORT={{adb_port}}"]
args = ["--prop", "ro.build.version.release=13", "--prop", "ro.build.version.sdk=33"]

[[docker.images]]
id = "{ROOTED}"
name = "Test phone whose commands may run as root"
reference = "{phone_image}"
env = ["ADBD_PORT={{adb_port}}"]
run_as_root = true
{extra_config}""")
    server = Server(data_dir, sim_delay_ms=None,
                    extra_args=["--backends", str(config), "--watch-interval-ms", "300", *extra_args]).start()
    try:
        yield {"server": server, "client": server.client(), "prefix": prefix, "adb_port": adb_port,
               "adb_ports": (base, base + 99), "config": config}
    finally:
        server.stop()
        for c in docker("ps", "-aq", "--filter", f"name={prefix}").split():
            docker("rm", "-f", c, check=False)
        for v in docker("volume", "ls", "-q", "--filter", f"name={prefix}").split():
            docker("volume", "rm", "-f", v, check=False)


def create(client, n, image=ANDROID_12, name="dock"):
    r = client.create_android_instance_group(models.CreateAndroidInstanceGroupRequest(
        biz_region_id="cn-hangzhou", image_id=image, instance_group_spec="acp.basic.small",
        number_of_instances=n, instance_group_name=name)).body
    ids = r.instance_group_infos[0].instance_ids
    wait_for(lambda: all(m.android_instance_status == "RUNNING" for m in describe_instances(client, ids).values()),
             timeout=120, what="containers RUNNING")
    return r.instance_group_ids[0], ids


def inspect(fleet, instance):
    return json.loads(docker("inspect", fleet["prefix"] + instance))[0]


def finished(client, request_id):
    wait_batch(client, request_id, timeout=120)
    kids = {t.instance_id: t for t in tasks_of(client, invoke_id=request_id, level=2)}
    for t in kids.values():
        assert t.task_status == "Finished", (t.task_type, t.error_code, t.error_msg)
    return kids






def test_images_are_listed_with_the_simulated_ones(fleet):
    images = fleet["client"].describe_image_list(models.DescribeImageListRequest(image_type="System")).body.data
    ids = {i.image_id for i in images}
    assert {ANDROID_12, ANDROID_13, ROOTED} <= ids and "imgc-simandroid140000" in ids


def test_a_group_of_containers_through_stop_start_reboot_and_reset(fleet):
    client = fleet["client"]
    _, ids = create(client, 3)
    for i in ids:
        c = inspect(fleet, i)
        assert c["State"]["Running"] and c["Config"]["Labels"]["cloudphone.instance"] == i
        assert any(m["Destination"] == "/data" and m["Name"] == f"{fleet['prefix']}{i}-data" for m in c["Mounts"])
    assert sh(client, ids[0], "echo kept > /sdcard/marker; cat /sdcard/marker") == ("kept\n", 0)

    r = client.stop_android_instance(models.StopAndroidInstanceRequest(android_instance_ids=ids)).body
    finished(client, r.request_id)
    for i in ids:
        assert status(client, i) == "STOPPED" and not inspect(fleet, i)["State"]["Running"]

    r = client.start_android_instance(models.StartAndroidInstanceRequest(android_instance_ids=ids)).body
    finished(client, r.request_id)
    assert all(status(client, i) == "RUNNING" and inspect(fleet, i)["State"]["Running"] for i in ids)
    # The data volume outlived the stop.
    assert sh(client, ids[0], "cat /sdcard/marker") == ("kept\n", 0)

    boot = sh(client, ids[1], "getprop sys.cloudphone.boot_id")[0]
    started = inspect(fleet, ids[1])["State"]["StartedAt"]
    r = client.reboot_android_instances_in_group(
        models.RebootAndroidInstancesInGroupRequest(android_instance_ids=[ids[1]])).body
    finished(client, r.request_id)
    assert inspect(fleet, ids[1])["State"]["StartedAt"] != started
    assert sh(client, ids[1], "getprop sys.cloudphone.boot_id")[0] != boot

    container = inspect(fleet, ids[0])["Id"]
    r = client.reset_android_instances_in_group(
        models.ResetAndroidInstancesInGroupRequest(android_instance_ids=[ids[0]])).body
    finished(client, r.request_id)
    assert status(client, ids[0]) == "RUNNING"
    assert inspect(fleet, ids[0])["Id"] != container, "a reset recreates the container"
    out, code = sh(client, ids[0], "cat /sdcard/marker")
    assert code == 1 and "No such file" in out, "a reset wipes the data"


def test_commands_files_backups_apps_and_screenshots_inside_the_container(fleet, tmp_path):
    client, server = fleet["client"], fleet["server"]
    _, (phone,) = create(client, 1, name="inside")
    out, code = sh(client, phone, "echo out; echo err >&2; getprop ro.build.version.release; exit 7")
    # Both streams, each in its own order (adbd sends them apart, so their interleaving is not
    # fixed).
    assert code == 7 and sorted(out.splitlines()) == ["12", "err", "out"], out

    data = os.urandom(300_000)
    local = tmp_path / "blob.bin"
    local.write_bytes(data)
    assert cp(server, local, f"oss://{BUCKET}/in/blob.bin").returncode == 0
    r = client.send_file(models.SendFileRequest(
        android_instance_id_list=[phone], upload_url=f"oss://{BUCKET}/in/blob.bin",
        source_file_path="/sdcard/Download/", upload_type="OSS", upload_endpoint=ENDPOINT)).body
    finished(client, r.request_id)
    assert sh(client, phone, "wc -c < /sdcard/Download/blob.bin")[0].strip() == str(len(data))
    r = client.fetch_file(models.FetchFileRequest(
        android_instance_id_list=[phone], source_file_path="/sdcard/Download/blob.bin", upload_type="OSS",
        upload_url=f"oss://{BUCKET}/out", upload_endpoint=ENDPOINT)).body
    (t,) = finished(client, r.request_id).values()
    assert requests.get(json.loads(t.result)["Url"], timeout=30).content == data

    # Back up (leaving a folder out), damage, restore.
    assert sh(client, phone, "mkdir -p /sdcard/Download/cache; echo junk > /sdcard/Download/cache/j")[1] == 0
    r = client.backup_file(models.BackupFileRequest(
        android_instance_id_list=[phone], backup_file_path=f"oss://{BUCKET}/backups",
        source_file_path_list=["/sdcard/Download"], exclude_source_file_path_list=["/sdcard/Download/cache"],
        upload_type="OSS", upload_endpoint=ENDPOINT)).body
    finished(client, r.request_id)
    (backup,) = r.data
    assert sh(client, phone, "rm -r /sdcard/Download/blob.bin /sdcard/Download/cache")[1] == 0
    r = client.recovery_file(models.RecoveryFileRequest(
        android_instance_id_list=[phone], backup_file_id=backup.backup_file_id,
        upload_type="OSS", upload_endpoint=ENDPOINT)).body
    finished(client, r.request_id)
    assert sh(client, phone, "wc -c < /sdcard/Download/blob.bin")[0].strip() == str(len(data))
    assert sh(client, phone, "ls /sdcard/Download/cache")[1] != 0, "the excluded folder was left out"
    assert sh(client, phone, "ls /data/local/tmp")[0] == "", "no temporary file is left on the phone"

    # Fetching a folder or a missing file fails with the reason.
    for path, words in (("/sdcard/Download", "not a regular file"), ("/sdcard/none.txt", "No such file")):
        r = client.fetch_file(models.FetchFileRequest(
            android_instance_id_list=[phone], source_file_path=path, upload_type="OSS",
            upload_url=f"oss://{BUCKET}/out", upload_endpoint=ENDPOINT)).body
        wait_batch(client, r.request_id, timeout=120)
        (t,) = tasks_of(client, invoke_id=r.request_id, level=2)
        assert (t.task_status, t.error_code) == ("Failed", "FetchFileFailed") and words in t.error_msg, t.error_msg

    # An app: install, start, stop, uninstall.
    apk = make_apk(tmp_path, "com.example.dock", version_code=5, version_name="5.0")
    assert cp(server, apk, f"oss://{BUCKET}/apks/dock.apk").returncode == 0
    app_id = client.create_app(models.CreateAppRequest(
        oss_app_url=f"oss://{BUCKET}/apks/dock.apk", app_name="Dock")).body.app_id
    r = client.install_app(models.InstallAppRequest(app_id_list=[str(app_id)], instance_id_list=[phone])).body
    finished(client, r.request_id)
    assert "package:com.example.dock" in sh(client, phone, "pm list packages -3")[0].split()
    r = client.operate_app(models.OperateAppRequest(app_id=app_id, instance_id_list=[phone],
                                                     operate_type="start")).body
    finished(client, r.request_id)
    assert "com.example.dock/.MainActivity" in sh(client, phone, "dumpsys activity activities")[0]

    # A screenshot, taken with the app in front.
    r = client.create_screenshot(models.CreateScreenshotRequest(android_instance_id_list=[phone])).body
    (t,) = finished(client, r.request_id).values()
    png = requests.get(json.loads(t.result)["Url"], timeout=30).content
    assert decode_png(png)[:2] == (360, 640)

    r = client.operate_app(models.OperateAppRequest(app_id=app_id, instance_id_list=[phone],
                                                     operate_type="stop")).body
    finished(client, r.request_id)
    assert sh(client, phone, "dumpsys activity processes")[0] == ""
    r = client.uninstall_app(models.UninstallAppRequest(app_id_list=[str(app_id)], instance_id_list=[phone])).body
    finished(client, r.request_id)
    assert "com.example.dock" not in sh(client, phone, "pm list packages -3")[0]

    # Last, as it leaves the phone BACKUP_FAILED: a backup of a path that does not exist.
    r = client.backup_file(models.BackupFileRequest(
        android_instance_id_list=[phone], backup_file_path=f"oss://{BUCKET}/backups",
        source_file_path_list=["/sdcard/nowhere"], upload_type="OSS", upload_endpoint=ENDPOINT)).body
    wait_batch(client, r.request_id, timeout=120)
    (t,) = tasks_of(client, invoke_id=r.request_id, level=2)
    assert (t.task_status, t.error_code) == ("Failed", "BackupFileFailed")
    assert "/sdcard/nowhere: No such file or directory" in t.error_msg, t.error_msg


def test_commands_run_as_the_shell_user_unless_the_image_allows_root(fleet, tmp_path):
    """The test phone's adbd runs as root, as redroid's does: the server drops it to Android's
    `shell` user (`adb unroot`) before any work, after every restart too; only an image with
    `run_as_root = true` keeps root."""
    client, server = fleet["client"], fleet["server"]
    _, (phone,) = create(client, 1, name="uid")
    out, code = sh(client, phone, "id")
    assert code == 0 and out.startswith("uid=2000(shell) gid=2000(shell)"), out
    # Files sent are the shell user's too (adb push runs as adbd does), and root's are closed.
    local = tmp_path / "note.txt"
    local.write_text("hi")
    assert cp(server, local, f"oss://{BUCKET}/in/note.txt").returncode == 0
    r = client.send_file(models.SendFileRequest(
        android_instance_id_list=[phone], upload_url=f"oss://{BUCKET}/in/note.txt",
        source_file_path="/sdcard/Download/", upload_type="OSS", upload_endpoint=ENDPOINT)).body
    finished(client, r.request_id)
    assert sh(client, phone, "stat -c %u /sdcard/Download/note.txt") == ("2000\n", 0)
    out, code = sh(client, phone, "touch /system/owned")
    assert code != 0 and "Permission denied" in out, out
    # A reboot restarts the container, and its adbd as root: dropped again.
    r = client.reboot_android_instances_in_group(
        models.RebootAndroidInstancesInGroupRequest(android_instance_ids=[phone])).body
    finished(client, r.request_id)
    assert sh(client, phone, "id -u") == ("2000\n", 0)

    _, (rooted,) = create(client, 1, image=ROOTED, name="rooted")
    out, code = sh(client, rooted, "id")
    assert code == 0 and out.startswith("uid=0(root) gid=0(root)"), out


def test_an_install_failure_carries_androids_code(fleet, tmp_path):
    client, server = fleet["client"], fleet["server"]
    _, (phone,) = create(client, 1, name="downgrade")
    app_ids = []
    for version in (9, 3):
        apk = make_apk(tmp_path, "com.example.versions", version_code=version, version_name=f"{version}.0")
        assert cp(server, apk, f"oss://{BUCKET}/apks/versions-{version}.apk").returncode == 0
        app_ids.append(client.create_app(models.CreateAppRequest(
            oss_app_url=f"oss://{BUCKET}/apks/versions-{version}.apk", app_name=f"V{version}")).body.app_id)
    r = client.install_app(models.InstallAppRequest(app_id_list=[str(app_ids[0])], instance_id_list=[phone])).body
    finished(client, r.request_id)
    r = client.install_app(models.InstallAppRequest(app_id_list=[str(app_ids[1])], instance_id_list=[phone])).body
    wait_batch(client, r.request_id, timeout=120)
    (t,) = tasks_of(client, invoke_id=r.request_id, level=2)
    assert (t.task_status, t.error_code) == ("Failed", "InstallAppFailed")
    assert "INSTALL_FAILED_VERSION_DOWNGRADE" in t.error_msg, t.error_msg


def test_a_group_changes_image(fleet):
    client = fleet["client"]
    group, ids = create(client, 2, name="reimage")
    assert sh(client, ids[0], "getprop ro.build.version.release")[0] == "12\n"
    r = client.update_instance_group_image(models.UpdateInstanceGroupImageRequest(
        image_id=ANDROID_13, instance_group_ids=[group])).body
    assert wait_batch(client, r.request_id, timeout=120).task_status == "Finished"
    for i, m in describe_instances(client, ids).items():
        assert (m.image_id, m.android_instance_status) == (ANDROID_13, "RUNNING")
        assert sh(client, i, "getprop ro.build.version.release")[0] == "13\n"
        assert inspect(fleet, i)["Config"]["Labels"]["cloudphone.image"] == ANDROID_13


def test_an_image_change_stays_within_the_backend(fleet):
    client = fleet["client"]
    group, (p,) = create(client, 1, name="stays")
    e = api_error(client.update_instance_group_image, models.UpdateInstanceGroupImageRequest(
        image_id="imgc-simandroid140000", instance_group_ids=[group]))
    assert e.code == "InvalidParameter.ImageId" and "one backend" in e.message
    assert status(client, p) == "RUNNING"


def test_a_container_killed_from_outside_goes_unavailable(fleet):
    client = fleet["client"]
    _, (dead, alive) = create(client, 2, name="victims")
    docker("kill", fleet["prefix"] + dead)
    wait_for(lambda: status(client, dead) == "UNAVAILABLE", timeout=20, what="the killed phone UNAVAILABLE")
    assert status(client, alive) == "RUNNING"
    r = client.run_command(models.RunCommandRequest(instance_ids=[dead, alive], command_content="echo hi")).body
    wait_batch(client, r.invoke_id, timeout=120)
    kids = {t.instance_id: t for t in tasks_of(client, invoke_id=r.invoke_id, level=2)}
    assert (kids[dead].task_status, kids[dead].error_code) == ("Failed", "IncorrectInstanceStatus")
    assert kids[alive].task_status == "Finished"
    # A reboot brings it back.
    r = client.reboot_android_instances_in_group(
        models.RebootAndroidInstancesInGroupRequest(android_instance_ids=[dead])).body
    finished(client, r.request_id)
    assert status(client, dead) == "RUNNING" and sh(client, dead, "echo back") == ("back\n", 0)


def test_a_task_on_a_container_that_died_unseen_fails_with_a_clear_code(fleet):
    """Killed while the watcher is not looking: the task itself finds the phone gone."""
    client = fleet["client"]
    _, (phone,) = create(client, 1, name="unseen")
    docker("kill", fleet["prefix"] + phone)
    r = client.run_command(models.RunCommandRequest(instance_ids=[phone], command_content="echo hi")).body
    wait_batch(client, r.invoke_id, timeout=120)
    (t,) = tasks_of(client, invoke_id=r.invoke_id, level=2)
    assert t.task_status == "Failed"
    assert t.error_code in ("InstanceUnreachable", "IncorrectInstanceStatus"), t.error_code
    if t.error_code == "InstanceUnreachable":
        assert "not running" in t.error_msg, t.error_msg
    wait_for(lambda: status(client, phone) == "UNAVAILABLE", timeout=20, what="UNAVAILABLE")


def test_deleting_the_group_removes_containers_and_volumes(fleet):
    client = fleet["client"]
    group, ids = create(client, 2, name="doomed")
    client.delete_android_instance_group(models.DeleteAndroidInstanceGroupRequest(instance_group_ids=[group]))
    def gone():
        names = docker("ps", "-a", "--format", "{{.Names}}").split()
        volumes = docker("volume", "ls", "--format", "{{.Name}}").split()
        return not any(fleet["prefix"] + i in names or f"{fleet['prefix']}{i}-data" in volumes for i in ids)
    wait_for(gone, timeout=60, what="containers and volumes removed")
