"""`cloudphone tasks ...`: the real binary as a command-line client of a spawned server, signed
like the SDK; exit codes and vendor error codes as a script sees them."""

import json
import os
import subprocess

from alibabacloud_eds_aic20230930 import models

from conftest import BINARY, create_group, inject_fault, clear_faults, wait_batch, wait_for


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
    assert wrong_key.returncode == 1 and "SignatureDoesNotMatch" in wrong_key.stderr, wrong_key.stderr


def bare(server, *args, config=None, extra_env=None):
    """The binary with no key in its environment: only flags or the config file give one."""
    env = {"PATH": os.environ["PATH"]}
    if config is not None:
        env["CLOUDPHONE_CONFIG"] = str(config)
    env.update(extra_env or {})
    return subprocess.run([str(BINARY), *args], env=env, capture_output=True, text=True, timeout=120)


def test_configure_writes_an_owner_only_profile_that_later_calls_use(server, tmp_path):
    config = tmp_path / "cfg" / "config.toml"
    none = bare(server, "instances", "list", config=config)
    assert none.returncode == 1 and "no access key" in none.stderr and "configure" in none.stderr

    w = bare(server, "configure", "--endpoint", f"http://{server.endpoint}", "--access-key-id", server.key[0],
             "--access-key-secret", server.key[1], config=config)
    assert w.returncode == 0, w.stderr
    assert oct(config.stat().st_mode & 0o777) == "0o600"
    assert bare(server, "configure", "--profile", "wrong", "--endpoint", f"http://{server.endpoint}",
                "--access-key-id", "nobody", "--access-key-secret", "x", config=config).returncode == 0

    ok = bare(server, "groups", "list", config=config)
    assert ok.returncode == 0 and ok.stdout.startswith("GroupId"), ok.stderr
    named = bare(server, "groups", "list", "--profile", "wrong", config=config)
    assert named.returncode == 1 and "SignatureDoesNotMatch" in named.stderr
    # A flag wins over the profile.
    flagged = bare(server, "groups", "list", "--profile", "wrong", "--access-key-id", server.key[0],
                   "--access-key-secret", server.key[1], config=config)
    assert flagged.returncode == 0, flagged.stderr
    missing = bare(server, "groups", "list", "--profile", "absent", config=config)
    assert missing.returncode == 1 and "no profile [absent]" in missing.stderr

    config.chmod(0o644)
    loose = bare(server, "groups", "list", config=config)
    assert loose.returncode == 0 and "chmod 600" in loose.stderr


def test_groups_instances_and_power_operations(client, server):
    images = cli(server, "images", "list", "--output", "json")
    assert "imgc-simandroid140000" in [i["ImageId"] for i in json.loads(images.stdout)]

    made = cli(server, "groups", "create", "--image", "imgc-simandroid140000", "--instances", "2",
               "--name", "clipower", "--output", "json")
    assert made.returncode == 0, made.stderr
    [info] = json.loads(made.stdout)
    group, ids = info["InstanceGroupId"], info["InstanceIds"]
    assert len(ids) == 2
    listed = cli(server, "groups", "list", "--name", "clipower")
    assert group in listed.stdout and "clipower" in listed.stdout

    def statuses():
        out = cli(server, "instances", "list", "--group", group, "--output", "json")
        assert out.returncode == 0, out.stderr
        return {i["AndroidInstanceId"]: i["AndroidInstanceStatus"] for i in json.loads(out.stdout)}
    wait_for(lambda: set(statuses().values()) == {"RUNNING"}, what="the group RUNNING")
    assert set(statuses()) == set(ids)

    stop = cli(server, "instances", "stop", *ids, "--wait", "--interval-ms", "100")
    assert stop.returncode == 0 and "Finished 2/2 ok" in stop.stdout, (stop.stdout, stop.stderr)
    assert set(statuses().values()) == {"STOPPED"}
    start = cli(server, "instances", "start", ",".join(ids), "--wait", "--interval-ms", "100")
    assert start.returncode == 0, start.stderr
    assert set(statuses().values()) == {"RUNNING"}
    for verb in ("reboot", "reset"):
        r = cli(server, "instances", verb, *ids, "--wait", "--interval-ms", "100")
        assert r.returncode == 0 and "Finished 2/2 ok" in r.stdout, (verb, r.stdout, r.stderr)
    # Without --wait the call returns at once and says how to follow it.
    quick = cli(server, "instances", "reboot", ids[0])
    assert quick.returncode == 0 and "tasks watch" in quick.stderr
    invoke = quick.stdout.split()[1]
    assert cli(server, "tasks", "watch", invoke, "--interval-ms", "100").returncode == 0

    inject_fault(client, ids[1], "RebootInstance", error_code="OperationFailed", error_msg="no power")
    try:
        bad = cli(server, "instances", "reboot", *ids, "--wait", "--interval-ms", "100")
    finally:
        clear_faults(client)
    assert bad.returncode == 1 and f"failed: {ids[1]} OperationFailed: no power" in bad.stderr

    unknown = cli(server, "instances", "start", "acp-nosuchphone000")
    assert unknown.returncode == 1 and "InvalidAndroidInstanceIds.NotFound" in unknown.stderr
    gone = cli(server, "groups", "delete", group)
    assert gone.returncode == 0, gone.stderr
    wait_for(lambda: group not in cli(server, "groups", "list").stdout, what="the group gone")


def test_exec_prints_each_output_and_passes_the_exit_code(client, server):
    _, ids = create_group(client, 2, name="cliexec")
    one = cli(server, "exec", "--instances", ids[0], "--", "echo", "hello;", "exit", "7")
    assert one.returncode == 7 and one.stdout == "hello\n", (one.returncode, one.stdout, one.stderr)
    prop = cli(server, "exec", "--instances", ids[0], "--", "getprop ro.build.version.release")
    assert prop.returncode == 0 and prop.stdout.strip() == "14"
    both = cli(server, "exec", "--instances", ",".join(ids), "--", "echo 42")
    assert both.returncode == 0, both.stderr
    assert both.stdout == "".join(f"--- {i} (exit 0) ---\n42\n" for i in ids)
    mixed = cli(server, "exec", "--instances", ids[0], "--instances", ids[1], "--", "nosuchcmd")
    assert mixed.returncode == 1 and "(exit 127)" in mixed.stdout
    no_cmd = cli(server, "exec", "--instances", ids[0])
    assert no_cmd.returncode == 2 and "COMMAND" in no_cmd.stderr


def test_apps_from_a_local_apk_to_running_on_phones(client, server, tmp_path):
    _, ids = create_group(client, 2, name="cliapps")
    apk = tmp_path / "clishop.apk"
    subprocess.run([str(BINARY), "dev", "make-apk", "--package", "com.example.clishop", str(apk)], check=True)
    made = cli(server, "apps", "create", "--name", "clishop", "--file", str(apk), "--bucket", "cli-apks")
    assert made.returncode == 0, made.stderr
    app = made.stdout.strip()
    listed = json.loads(cli(server, "apps", "list", "--name", "clishop", "--output", "json").stdout)
    assert [(str(a["AppId"]), a["PackageName"]) for a in listed] == [(app, "com.example.clishop")]

    inst = cli(server, "apps", "install", app, "--instances", ",".join(ids), "--wait", "--interval-ms", "100")
    assert inst.returncode == 0 and "Finished 2/2 ok" in inst.stdout, (inst.stdout, inst.stderr)
    pkgs = cli(server, "exec", "--instances", ids[1], "--", "pm list packages")
    assert "package:com.example.clishop" in pkgs.stdout.splitlines()
    for verb in ("start", "restart", "stop"):
        r = cli(server, "apps", verb, app, "--instances", ",".join(ids), "--wait", "--interval-ms", "100")
        assert r.returncode == 0, (verb, r.stderr)
    types = {t["TaskType"] for t in json.loads(cli(server, "tasks", "list", "--instance-id", ids[0], "--all",
                                                   "--output", "json").stdout)}
    assert {"InstallApp", "StartApp", "RestartApp", "StopApp"} <= types
    un = cli(server, "apps", "uninstall", app, "--instances", ",".join(ids), "--wait", "--interval-ms", "100")
    assert un.returncode == 0, un.stderr
    pkgs = cli(server, "exec", "--instances", ids[1], "--", "pm list packages")
    assert "package:com.example.clishop" not in pkgs.stdout.splitlines()
    assert cli(server, "apps", "delete", app).returncode == 0
    assert json.loads(cli(server, "apps", "list", "--name", "clishop", "--output", "json").stdout) == []
    none = cli(server, "apps", "create", "--name", "x", "--oss-url", "oss://cli-apks/missing.apk")
    assert none.returncode == 1 and ".NotFound" in none.stderr, none.stderr


def test_screenshot_saves_a_png(client, server, tmp_path):
    _, ids = create_group(client, 1, name="clishot")
    out = tmp_path / "screen.png"
    r = cli(server, "screenshot", ids[0], "-o", str(out))
    assert r.returncode == 0, r.stderr
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and f"({len(data)} bytes)" in r.stdout
    missing = cli(server, "screenshot", "acp-nosuchphone000", "-o", str(tmp_path / "x.png"))
    assert missing.returncode == 1 and "NotFound" in missing.stderr
    assert not (tmp_path / "x.png").exists()


def test_completions_and_help_examples(server):
    for shell, marker in (("bash", "complete -F"), ("zsh", "#compdef cloudphone"), ("fish", "complete -c cloudphone")):
        r = subprocess.run([str(BINARY), "completions", shell], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and marker in r.stdout and "screenshot" in r.stdout, shell
    for sub in (["exec"], ["instances", "reboot"], ["apps", "install"], ["tasks", "watch"], ["screenshot"]):
        h = subprocess.run([str(BINARY), *sub, "--help"], capture_output=True, text=True, timeout=60)
        assert h.returncode == 0 and "Example" in h.stdout, sub
    # A reader that goes away ends the client quietly, not in a panic.
    p = subprocess.run(f"'{BINARY}' completions bash | head -1", shell=True, capture_output=True, text=True)
    assert "panicked" not in p.stderr


def test_watch_follows_several_batches_and_fails_if_any_failed(client, server):
    _, ids = create_group(client, 3, name="cliwatch2")
    ok = client.reboot_android_instances_in_group(
        models.RebootAndroidInstancesInGroupRequest(android_instance_ids=ids[:2])).body
    inject_fault(client, ids[2], "RebootInstance", error_code="OperationFailed", error_msg="no boot")
    try:
        bad = client.reboot_android_instances_in_group(
            models.RebootAndroidInstancesInGroupRequest(android_instance_ids=ids[2:])).body
        w = cli(server, "tasks", "watch", ok.request_id, bad.tasks.parent_task_id, "--interval-ms", "100")
    finally:
        clear_faults(client)
    assert w.returncode == 1, (w.stdout, w.stderr)
    assert f"{ok.tasks.parent_task_id} Finished 2/2 ok" in w.stdout
    assert f"{bad.tasks.parent_task_id} Failed 0/1 ok, 1 failed" in w.stdout
    assert f"failed: {ids[2]} OperationFailed: no boot" in w.stderr
    both_ok = cli(server, "tasks", "watch", ok.request_id, ok.tasks.parent_task_id, "--interval-ms", "100")
    assert both_ok.returncode == 0
