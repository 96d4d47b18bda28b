"""RunCommand, RunSyncCommand and DescribeInvocations through the official SDK, against the
simulated shell: outputs, exit codes, encodings, timeouts, limits, and the three views of one
invocation agreeing."""

import base64
import json
import time

import pytest
from alibabacloud_eds_aic20230930 import models

from conftest import (api_error, call, create_group, signed_request, error_code, tasks_of, total_tasks,
                      wait_batch, wait_for)


@pytest.fixture(scope="module")
def fleet(client):
    _, ids = create_group(client, 50, name="cmd")
    return ids


def run(client, ids, command, **kw):
    return client.run_command(models.RunCommandRequest(instance_ids=ids, command_content=command, **kw)).body


def results(client, invoke_id):
    """{instance id: (status, result dict or None, error code)} of a finished invocation."""
    wait_batch(client, invoke_id)
    out = {}
    for t in tasks_of(client, invoke_id=invoke_id, level=2):
        out[t.instance_id] = (t.task_status, json.loads(t.result) if t.result else None, t.error_code)
    return out


def test_a_command_on_fifty_phones(client, fleet):
    r = run(client, fleet, "getprop ro.serialno; echo done && exit 3")
    assert r.invoke_id == r.request_id
    assert len(r.run_command_infos) == 50
    assert {i.instance_id for i in r.run_command_infos} == set(fleet)
    children = {t.task_id: t for t in tasks_of(client, parent_task_id=r.task_id)}
    assert {i.child_task_id for i in r.run_command_infos} == set(children)
    assert all(t.task_type == "RunCommand" and t.level == 2 for t in children.values())
    batch = wait_batch(client, r.invoke_id)
    assert batch.task_id == r.task_id
    assert (batch.task_status, batch.success_child_count, batch.failed_child_count) == ("Finished", 50, 0)
    for instance, (status, result, _) in results(client, r.invoke_id).items():
        # A non-zero exit is still a command that ran: Finished, with its exit code.
        assert status == "Finished"
        assert result == {"Output": f"{instance}\ndone\n", "ExitCode": 3, "Truncated": False}


def test_fifty_one_phones_are_refused(client, fleet):
    before = total_tasks(client)
    e = api_error(client.run_command, models.RunCommandRequest(
        instance_ids=fleet + ["acp-0000000000000051"], command_content="id"))
    assert (e.status_code, e.code) == (400, "InvalidParameter.InstanceIds")
    assert total_tasks(client) == before


def test_base64_content(client, fleet):
    script = "echo 'hello  world' && echo \"a;b\""
    for encoding in ("Base64", "base64", "BASE64"):
        r = run(client, fleet[:1], base64.b64encode(script.encode()).decode(), content_encoding=encoding)
        (status, result, _), = results(client, r.invoke_id).values()
        assert (status, result["Output"], result["ExitCode"]) == ("Finished", "hello  world\na;b\n", 0)
    # An unknown encoding means PlainText, as the vendor documents.
    r = run(client, fleet[:1], "echo plain", content_encoding="Hex")
    (_, result, _), = results(client, r.invoke_id).values()
    assert result["Output"] == "plain\n"
    e = api_error(client.run_command, models.RunCommandRequest(
        instance_ids=fleet[:1], command_content="!!not base64!!", content_encoding="Base64"))
    assert e.code == "InvalidParameter.CommandContent"


def test_a_command_past_its_timeout_fails(client, fleet):
    started = time.time()
    r = run(client, fleet[:2], "echo start; sleep 30", timeout=1)
    batch = wait_batch(client, r.invoke_id, timeout=20)
    assert time.time() - started < 15
    assert (batch.task_status, batch.failed_child_count) == ("Failed", 2)
    for status, result, code in results(client, r.invoke_id).values():
        assert (status, result, code) == ("Failed", None, "CommandTimeout")


def test_unknown_commands_exit_127(client, fleet):
    r = run(client, fleet[:1], "nosuchtool --version")
    (status, result, _), = results(client, r.invoke_id).values()
    assert status == "Finished"
    assert result["ExitCode"] == 127
    assert "nosuchtool: not found" in result["Output"]


def test_the_shell_sees_the_phone(client, fleet):
    r = run(client, fleet[:1], "getprop ro.build.version.release; pm list packages com.android.settings; id")
    (_, result, _), = results(client, r.invoke_id).values()
    lines = result["Output"].splitlines()
    assert lines[0] == "14", result
    assert "package:com.android.settings" in lines
    assert lines[-1].startswith("uid=2000(shell)")


def test_a_stopped_phone_is_incorrect_status(client):
    _, ids = create_group(client, 2, name="cmdstop")
    client.stop_android_instance(models.StopAndroidInstanceRequest(android_instance_ids=ids[:1]))
    r = run(client, ids, "echo hi")
    batch = wait_batch(client, r.invoke_id)
    assert batch.task_status == "PartFinished"
    out = results(client, r.invoke_id)
    assert out[ids[0]][0] == "Failed" and out[ids[0]][2] == "IncorrectInstanceStatus"
    assert out[ids[1]][0] == "Finished"


def test_sync_command_invocations_and_tasks_agree(client, fleet):
    ids = fleet[:3]
    r = client.run_sync_command(models.RunSyncCommandRequest(
        instance_ids=ids, command_content="getprop ro.serialno", wait_time=3000)).body
    assert r.total_count == "3"
    sync = {d.instance_id: d for d in r.data}
    assert set(sync) == set(ids)
    for instance, d in sync.items():
        assert (d.invocation_status, d.output, d.invocation_id) == ("Success", f"{instance}\n", r.request_id)
        assert d.start_time.endswith("Z") and len(d.finish_time) == 19
    tasks = {t.instance_id: t for t in tasks_of(client, invoke_id=r.request_id, level=2)}
    assert set(tasks) == set(ids)
    inv = client.describe_invocations(models.DescribeInvocationsRequest(
        invocation_id=r.request_id, instance_ids=ids)).body
    assert inv.total_count == "3"
    for d in inv.data:
        t = tasks[d.instance_id]
        assert t.task_status == "Finished"
        assert json.loads(t.result)["Output"] == d.output == sync[d.instance_id].output
        assert d.invocation_status == "Success"
        assert d.finish_time == sync[d.instance_id].finish_time


def test_invocations_of_run_command_show_failures_and_pending(client, fleet):
    r = run(client, fleet[:2], "exit 4")
    wait_batch(client, r.invoke_id)
    inv = client.describe_invocations(models.DescribeInvocationsRequest(
        invocation_id=r.invoke_id, instance_ids=fleet[:2])).body
    assert [d.invocation_status for d in inv.data] == ["Failed", "Failed"]
    r = run(client, fleet[2:3], "sleep 30", timeout=1)
    wait_batch(client, r.invoke_id, timeout=20)
    inv = client.describe_invocations(models.DescribeInvocationsRequest(
        invocation_id=r.invoke_id, instance_ids=fleet[2:3])).body
    assert inv.data[0].invocation_status == "Timeout"
    e = api_error(client.describe_invocations, models.DescribeInvocationsRequest(
        invocation_id="NO-SUCH-INVOCATION", instance_ids=fleet[:1]))
    assert (e.status_code, e.code) == (404, "InvalidInvocationId.NotFound")
    e = api_error(client.describe_invocations, models.DescribeInvocationsRequest(invocation_id=r.invoke_id))
    assert e.code == "MissingParameter.InstanceIds"


@pytest.mark.parametrize("wait", [0, 499, 3001])
def test_sync_wait_time_bounds(client, fleet, wait):
    e = api_error(client.run_sync_command, models.RunSyncCommandRequest(
        instance_ids=fleet[:1], command_content="id", wait_time=wait))
    assert e.code == "InvalidParameter.WaitTime"


def test_bad_commands_create_nothing(client, server, fleet):
    before = total_tasks(client)
    for content, code in (("", "MissingParameter.CommandContent"),
                          ("   ", "InvalidParameter.CommandContent"),
                          ("echo " + "x" * 20_000, "InvalidParameter.CommandContent"),
                          (None, "MissingParameter.CommandContent")):
        e = api_error(client.run_command, models.RunCommandRequest(instance_ids=fleet[:1], command_content=content))
        assert e.code == code, content
    e = api_error(client.run_command, models.RunCommandRequest(command_content="id"))
    assert e.code == "MissingParameter.InstanceIds"
    e = api_error(client.run_command, models.RunCommandRequest(instance_ids=fleet[:1], command_content="id", timeout=0))
    assert e.code == "InvalidParameter.Timeout"
    # A NUL byte, only expressible through Base64.
    e = api_error(client.run_command, models.RunCommandRequest(
        instance_ids=fleet[:1], command_content=base64.b64encode(b"echo a\0b").decode(), content_encoding="Base64"))
    assert e.code == "InvalidParameter.CommandContent"
    # A command of 1 MiB in a form body is refused whole, with the vendor's JSON error.
    r = signed_request(server, "RunCommand", body=[("InstanceIds.1", fleet[0]), ("CommandContent", "x" * (1 << 20))])
    assert error_code(r) == (413, "RequestEntityTooLarge")
    r = signed_request(server, "RunCommand", body=[("InstanceIds.1", fleet[0]), ("CommandContent", "echo " + "x" * 600_000)])
    assert error_code(r) == (400, "InvalidParameter.CommandContent")
    assert total_tasks(client) == before


def test_another_accounts_phone_is_not_found(client, server, fleet):
    other = server.client(key=server.create_key("cmd-other"))
    e = api_error(other.run_command, models.RunCommandRequest(instance_ids=fleet[:1], command_content="id"))
    assert (e.status_code, e.code) == (404, "InvalidInstanceIds.NotFound")
    e = api_error(other.run_sync_command, models.RunSyncCommandRequest(instance_ids=fleet[:1], command_content="id"))
    assert e.code == "InvalidInstanceIds.NotFound"
