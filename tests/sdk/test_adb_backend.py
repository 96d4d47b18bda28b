"""The adb backend through the official SDK: the devices a real ADB server (Debian's `adb`, on
a private port) sees become the instances of one group, and the SDK reboots them, runs commands
on them, moves files and installs apps on them.

No Android device side can run on our machines: each device is a test phone container (busybox
with the TEST FIXTURE tests/fixtures/test-adbd as its adbd) on the host's network, reached by the
server with `adb connect`, as a phone on Wi-Fi would be."""

import json
import os
import time
import uuid

import pytest
import requests
from alibabacloud_eds_aic20230930 import models

from conftest import (Server, api_error, describe_instances, docker, free_port, tasks_of, wait_batch, wait_for)
from conftest import instance_status as status
from conftest import run_shell as sh
from test_apps import make_apk
from test_files import cp

IMAGE = "imgc-adblab"
BUCKET = "cloudphone-saved-bucket-adb"
ENDPOINT = "oss-cn-hangzhou.aliyuncs.com"


@pytest.fixture(scope="module")
def lab(workdir, phone_image, adb_server):
    """Two test devices on TCP ports, and a server whose backends file makes the ADB server's
    devices the group `lab`."""
    prefix = f"cpd{uuid.uuid4().hex[:8]}-"
    devices = [new_device(phone_image, f"{prefix}dev{n}") for n in range(2)]
    config = workdir / "adb-backends.toml"
    config.write_text(adb_group_toml(adb_server, "lab", IMAGE, devices) + 'image_name = "Lab devices"\n')
    server = Server(workdir / "adb", sim_delay_ms=None,
                    extra_args=["--backends", str(config), "--watch-interval-ms", "300"]).start()
    client = server.client()
    try:
        group = wait_for(lambda: lab_group(client), timeout=30, what="the lab group")
        yield {"server": server, "client": client, "devices": devices, "group": group}
    finally:
        server.stop()
        for d in devices:
            remove_device(d)


def new_device(phone_image, name):
    """A test phone container on the host's network, its adbd on a free TCP port: a device
    on Wi-Fi, as an ADB server sees it."""
    port = free_port()
    docker("run", "-d", "--name", name, "--network", "host", "-e", f"ADBD_PORT={port}",
           "-v", f"{name}-data:/data", phone_image)
    return {"container": name, "serial": f"127.0.0.1:{port}"}


def remove_device(device):
    docker("rm", "-f", device["container"], check=False)
    docker("volume", "rm", "-f", f"{device['container']}-data", check=False)


def adb_group_toml(adb_server, group, image, devices):
    """A backends file whose one ADB group `group` is the devices of the ADB server on port
    `adb_server`, those on TCP connected."""
    return f"""
[adb]
port = {adb_server}
boot_timeout_secs = 30
discover_interval_ms = 300

[[adb.groups]]
name = "{group}"
image_id = "{image}"
connect = [{", ".join(f'"{d["serial"]}"' for d in devices)}]
"""


def lab_group(client):
    groups = client.describe_android_instance_groups(models.DescribeAndroidInstanceGroupsRequest()).body
    found = [g for g in groups.instance_group_model if g.instance_group_name == "lab"]
    if not found:
        return None
    phones = client.describe_android_instances(models.DescribeAndroidInstancesRequest(
        instance_group_id=found[0].instance_group_id)).body.instance_model
    if len(phones) < 2 or any(p.android_instance_status != "RUNNING" for p in phones):
        return None
    return {"id": found[0].instance_group_id, "phones": {p.android_instance_name: p.android_instance_id
                                                        for p in phones}}


def phone(lab, n):
    return lab["group"]["phones"][lab["devices"][n]["serial"]]




def child(client, request_id):
    wait_batch(client, request_id, timeout=60)
    (t,) = tasks_of(client, invoke_id=request_id, level=2)
    return t




def test_two_devices_are_the_instances_of_the_servers_group(lab):
    client = lab["client"]
    phones = lab["group"]["phones"]
    assert set(phones) == {d["serial"] for d in lab["devices"]}
    for serial, instance in phones.items():
        m = describe_instances(client, [instance])[instance]
        assert (m.image_id, m.android_instance_status, m.android_instance_group_id) == (IMAGE, "RUNNING", lab["group"]["id"])
        assert sh(client, instance, "getprop ro.product.model")[0] == "CloudPhone Test Device\n"
    images = {i.image_id for i in client.describe_image_list(models.DescribeImageListRequest(image_type="System")).body.data}
    assert IMAGE in images
    # Devices join by themselves: they cannot be ordered.
    e = api_error(client.create_android_instance_group, models.CreateAndroidInstanceGroupRequest(
        biz_region_id="cn-hangzhou", image_id=IMAGE, instance_group_spec="acp.basic.small", number_of_instances=1))
    assert e.code == "InvalidParameter.ImageId"


def test_commands_files_and_an_install_failure(lab, tmp_path):
    client, server = lab["client"], lab["server"]
    p = phone(lab, 0)
    assert sh(client, p, "echo hi; exit 5") == ("hi\n", 5)

    data = os.urandom(1_000_003)
    local = tmp_path / "push.bin"
    local.write_bytes(data)
    assert cp(server, local, f"oss://{BUCKET}/in/push.bin").returncode == 0
    r = client.send_file(models.SendFileRequest(
        android_instance_id_list=[p], upload_url=f"oss://{BUCKET}/in/push.bin",
        source_file_path="/data/local/tmp/", upload_type="OSS", upload_endpoint=ENDPOINT)).body
    assert child(client, r.request_id).task_status == "Finished"
    r = client.fetch_file(models.FetchFileRequest(
        android_instance_id_list=[p], source_file_path="/data/local/tmp/push.bin", upload_type="OSS",
        upload_url=f"oss://{BUCKET}/out", upload_endpoint=ENDPOINT)).body
    t = child(client, r.request_id)
    assert t.task_status == "Finished", (t.error_code, t.error_msg)
    assert requests.get(json.loads(t.result)["Url"], timeout=30).content == data, "byte-identical"

    app_ids = []
    for version in (20, 10):
        apk = make_apk(tmp_path, "com.example.lab", version_code=version, version_name=f"{version}")
        assert cp(server, apk, f"oss://{BUCKET}/apks/lab-{version}.apk").returncode == 0
        app_ids.append(client.create_app(models.CreateAppRequest(
            oss_app_url=f"oss://{BUCKET}/apks/lab-{version}.apk", app_name=f"Lab {version}")).body.app_id)
    r = client.install_app(models.InstallAppRequest(app_id_list=[str(app_ids[0])], instance_id_list=[p])).body
    assert child(client, r.request_id).task_status == "Finished"
    r = client.install_app(models.InstallAppRequest(app_id_list=[str(app_ids[1])], instance_id_list=[p])).body
    t = child(client, r.request_id)
    assert (t.task_status, t.error_code) == ("Failed", "InstallAppFailed")
    assert t.error_msg.startswith("Failure [INSTALL_FAILED_VERSION_DOWNGRADE"), t.error_msg


def test_reboot_and_what_a_device_cannot_do(lab):
    client = lab["client"]
    p = phone(lab, 1)
    boot = sh(client, p, "getprop sys.cloudphone.boot_id")[0]
    r = client.reboot_android_instances_in_group(
        models.RebootAndroidInstancesInGroupRequest(android_instance_ids=[p])).body
    t = child(client, r.request_id)
    assert t.task_status == "Finished", (t.error_code, t.error_msg)
    assert status(client, p) == "RUNNING"
    assert sh(client, p, "getprop sys.cloudphone.boot_id")[0] != boot

    for call, request in (
            (client.stop_android_instance, models.StopAndroidInstanceRequest(android_instance_ids=[p])),
            (client.reset_android_instances_in_group, models.ResetAndroidInstancesInGroupRequest(android_instance_ids=[p]))):
        t = child(client, call(request).body.request_id)
        assert (t.task_status, t.error_code) == ("Failed", "UnsupportedOperation"), t.error_msg
        assert status(client, p) == "RUNNING"


def test_a_device_that_leaves_is_unavailable_until_it_returns(lab):
    client = lab["client"]
    p = phone(lab, 0)
    container = lab["devices"][0]["container"]
    docker("stop", "-t", "0", container)
    wait_for(lambda: status(client, p) == "UNAVAILABLE", timeout=30, what="the device UNAVAILABLE")
    assert status(client, phone(lab, 1)) == "RUNNING"
    docker("start", container)
    wait_for(lambda: status(client, p) == "RUNNING", timeout=60, what="the device RUNNING again")
    assert sh(client, p, "echo back") == ("back\n", 0)


def test_two_nodes_over_postgresql_share_a_group_and_one_takes_over_its_devices(workdir, phone_image):
    """Every node drives any device of a group; one at a time records and watches it (the
    group's lease), and another takes that over once the holder dies."""
    import conftest
    if not conftest.ADMIN_URL:
        pytest.fail("CLOUDPHONE_TEST_DATABASE_URL is not set (scripts/test starts a cluster)", pytrace=False)
    # An ADB server of its own: a group is every device its server lists (the lab's are not).
    with conftest.private_adb_server() as adb_server:
        two_nodes_share_a_group(workdir, phone_image, adb_server)


def two_nodes_share_a_group(workdir, phone_image, adb_server):
    import conftest
    device = new_device(phone_image, f"cpd{uuid.uuid4().hex[:8]}-pair")
    name = device["container"]
    config = workdir / "adb-pair.toml"
    config.write_text(adb_group_toml(adb_server, "pair", "imgc-adbpair", [device]))
    database = conftest.fresh_database()
    args = ["--backends", str(config), "--watch-interval-ms", "300", "--host-lease-ms", "3000"]
    a = Server(workdir / "adb-pair-a", sim_delay_ms=None, database=database, extra_args=args).start()
    b = None
    try:
        # a took the group's lease before it served; b, started after, drives but does not record.
        b = Server(workdir / "adb-pair-b", sim_delay_ms=None, database=database, extra_args=args).start()
        node_a = a.node_id()
        lease = lambda: conftest.psql(database, "SELECT owner_node, epoch FROM leases WHERE name = 'adb:pair'").split("|")
        owner, epoch = lease()
        assert owner == node_a
        ca, cb = a.client(), b.client()

        def the_phone(client):
            ms = [m for m in client.describe_android_instances(models.DescribeAndroidInstancesRequest(
                max_results=100)).body.instance_model if m.image_id == "imgc-adbpair"]
            return ms[0].android_instance_id if len(ms) == 1 and ms[0].android_instance_status == "RUNNING" else None
        p = wait_for(lambda: the_phone(ca), timeout=30, what="the device recorded")
        assert the_phone(cb) == p
        assert sh(ca, p, "echo via-a") == ("via-a\n", 0)
        assert sh(cb, p, "echo via-b") == ("via-b\n", 0)

        # The holder dies: b takes the lease over and watches the device: it leaves, UNAVAILABLE;
        # it returns, RUNNING (b connects it again).
        a.kill()
        killed = time.time()
        wait_for(lambda: lease()[0] not in ("", node_a), timeout=15, what="b holding the group's lease")
        print(f"\nthe group's lease taken over {time.time() - killed:.1f} s after the kill (lease 3 s)")
        assert int(lease()[1]) > int(epoch)
        docker("stop", "-t", "0", name)
        stopped = time.time()
        wait_for(lambda: status(cb, p) == "UNAVAILABLE", timeout=15, what="the device UNAVAILABLE")
        print(f"the device UNAVAILABLE {time.time() - stopped:.1f} s after it stopped")
        docker("start", name)
        wait_for(lambda: status(cb, p) == "RUNNING", timeout=60, what="the device RUNNING again")
        assert sh(cb, p, "echo back") == ("back\n", 0)
    finally:
        a.stop()
        if b:
            b.stop()
        remove_device(device)
