"""`cloudphone tasks ...`: the real binary as a command-line client of a spawned server, signed
like the SDK; exit codes and vendor error codes as a script sees them."""

import json
import os
import subprocess

from alibabacloud_eds_aic20230930 import models

from conftest import BINARY, create_group, inject_fault, clear_faults, wait_batch


def cli(server, *args):
    env = dict(os.environ, CLOUDPHONE_ENDPOINT=f"http://{server.endpoint}",
               CLOUDPHONE_ACCESS_KEY_ID=server.key[0], CLOUDPHONE_ACCESS_KEY_SECRET=server.key[1])
    return subprocess.run([str(BINARY), *args], env=env, capture_output=True, text=True, timeout=120)


def test_watch_list_and_show_a_batch(client, server):
    _, ids = create_group(client, 3, name="cli")
    r = client.reboot_android_instances_in_group(
        models.RebootAndroidInstancesInGroupRequest(android_instance_ids=ids)).body
    w = cli(server, "tasks", "watch", r.request_id, "--interval-ms", "100")
    assert w.returncode == 0, w.stderr
    assert "Finished 3/3 ok, 0 failed, 0 running" in w.stdout, w.stdout

    j = cli(server, "tasks", "list", "--invoke-id", r.request_id, "--level", "2", "--output", "json")
    assert j.returncode == 0, j.stderr
    kids = json.loads(j.stdout)
    assert sorted(k["InstanceId"] for k in kids) == sorted(ids)
    assert {k["TaskStatus"] for k in kids} == {"Finished"}

    t = cli(server, "tasks", "list", "--invoke-id", r.request_id, "--level", "1")
    assert t.returncode == 0 and t.stdout.splitlines()[0].split()[:4] == ["TaskId", "Level", "TaskType", "Status"]
    assert "RebootInstance" in t.stdout and "3/3 ok" in t.stdout

    s = cli(server, "tasks", "show", kids[0]["TaskId"])
    assert s.returncode == 0 and json.loads(s.stdout)["TaskId"] == kids[0]["TaskId"]


def test_watch_exits_non_zero_when_a_child_failed(client, server):
    _, ids = create_group(client, 2, name="clifail")
    inject_fault(client, ids[1], "RebootInstance", error_code="OperationFailed", error_msg="kernel panic")
    try:
        r = client.reboot_android_instances_in_group(
            models.RebootAndroidInstancesInGroupRequest(android_instance_ids=ids)).body
        w = cli(server, "tasks", "watch", r.request_id, "--interval-ms", "100")
    finally:
        clear_faults(client)
    assert w.returncode == 1, (w.stdout, w.stderr)
    assert "PartFinished" in w.stdout
    assert f"failed: {ids[1]} OperationFailed: kernel panic" in w.stderr
    wait_batch(client, r.request_id)


def test_errors_carry_the_vendor_code(server):
    bad = cli(server, "tasks", "list", "--status", "Sleeping")
    assert bad.returncode == 1 and "InvalidParameter.TaskStatuses" in bad.stderr, bad.stderr
    assert "panicked" not in bad.stderr and "backtrace" not in bad.stderr.lower()
    missing = cli(server, "tasks", "show", "t-nosuchtask000000")
    assert missing.returncode == 1 and "InvalidTaskId.NotFound" in missing.stderr
    wrong_key = subprocess.run([str(BINARY), "tasks", "list", "--endpoint", f"http://{server.endpoint}",
                                "--access-key-id", "nobody", "--access-key-secret", "x"],
                               capture_output=True, text=True, timeout=60, env={"PATH": os.environ["PATH"]})
    assert wrong_key.returncode == 1 and "InvalidAccessKeyId.NotFound" in wrong_key.stderr, wrong_key.stderr
