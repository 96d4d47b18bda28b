"""Accounts, access keys and the audit log through `cloudphone admin`, as an operator uses
them, with the official SDK as the tenant: the user name is the Operator of a key's tasks; a
disabled key or account is refused at its very next call (its key cached by the server), on
every node; an account with phones is not deleted; every mutating call is in the audit log with
its request id, caller, source address and outcome; secrets are owner-only and never logged.
(Refusal on every node of a shared database: test_multinode.py.)"""

import json
import os
import stat
import subprocess

from alibabacloud_eds_aic20230930 import models

from conftest import BINARY, api_error, create_group, wait_batch, wait_for


def admin(server, *args, check=True):
    cmd = [str(BINARY), "admin", *args, "--data-dir", str(server.data_dir)]
    if server.database:
        cmd += ["--database-url", server.database]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env={"PATH": os.environ["PATH"]})
    if check:
        assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r


def new_key(server, account, user):
    r = admin(server, "keys", "create", "--account", account, "--user", user)
    k = json.loads(r.stdout)
    return k["AccessKeyId"], k["AccessKeySecret"]


def regions(client):
    return client.describe_regions(models.DescribeRegionsRequest())


def test_the_user_is_the_operator_and_a_disabled_key_is_refused_at_once(server):
    key = new_key(server, "acct-ops", "alice")
    client = server.client(key=key)
    regions(client)  # the server now holds the key in its cache
    _, ids = create_group(client, 1, name="ops")
    r = client.reboot_android_instances_in_group(
        models.RebootAndroidInstancesInGroupRequest(android_instance_ids=ids)).body
    assert wait_batch(client, r.request_id).operator == "alice"

    admin(server, "keys", "disable", key[0])
    e = api_error(regions, client)
    assert e.code == "SignatureDoesNotMatch"
    e = api_error(client.reboot_android_instances_in_group,
                  models.RebootAndroidInstancesInGroupRequest(android_instance_ids=ids))
    assert e.code == "SignatureDoesNotMatch"
    listed = json.loads(admin(server, "keys", "list", "--account", "acct-ops", "--output", "json").stdout)
    assert [(k["AccessKeyId"], k["State"]) for k in listed] == [(key[0], "disabled")]
    assert key[1] not in json.dumps(listed), "a listing shows no secret"
    admin(server, "keys", "enable", key[0])
    regions(client)

    other = server.client(key=new_key(server, "acct-ops", "bob"))
    admin(server, "accounts", "disable", "acct-ops")
    for c in (client, other):
        assert api_error(regions, c).code == "SignatureDoesNotMatch"
    assert "account disabled" in admin(server, "keys", "list", "--account", "acct-ops").stdout
    admin(server, "accounts", "enable", "acct-ops")
    regions(other)
    assert admin(server, "keys", "disable", "LTAInosuchkey", check=False).returncode == 1


def test_an_account_with_phones_is_not_deleted(server):
    key = new_key(server, "acct-gone", "carol")
    client = server.client(key=key)
    group, ids = create_group(client, 2, name="gone")
    row = [a for a in json.loads(admin(server, "accounts", "list", "--output", "json").stdout)
           if a["Account"] == "acct-gone"]
    assert row and row[0]["Instances"] == 2 and row[0]["Keys"] == 1
    refused = admin(server, "accounts", "delete", "acct-gone", check=False)
    assert refused.returncode == 1 and "still has 2 instances" in refused.stderr
    regions(client)
    client.delete_android_instance_group(models.DeleteAndroidInstanceGroupRequest(instance_group_ids=[group]))
    wait_for(lambda: admin(server, "accounts", "delete", "acct-gone", check=False).returncode == 0,
             what="the account deleted once its phones are")
    assert api_error(regions, client).code == "SignatureDoesNotMatch"
    assert "acct-gone" not in admin(server, "accounts", "list").stdout


def test_every_mutating_call_is_audited(server):
    key = new_key(server, "acct-audit", "dave")
    client = server.client(key=key)
    _, ids = create_group(client, 2, name="audited")
    reboot = client.reboot_android_instances_in_group(
        models.RebootAndroidInstancesInGroupRequest(android_instance_ids=ids)).body
    wait_batch(client, reboot.request_id)
    bad = api_error(client.stop_android_instance,
                    models.StopAndroidInstanceRequest(android_instance_ids=["acp-nosuchphone000"]))
    client.describe_tasks(models.DescribeTasksRequest())
    entries = json.loads(admin(server, "audit", "--account", "acct-audit", "--output", "json").stdout)
    actions = [e["Action"] for e in entries]
    assert actions == ["CreateAndroidInstanceGroup", "RebootAndroidInstancesInGroup", "StopAndroidInstance"], actions
    create, rb, stop = entries
    assert all(e["User"] == "dave" and e["AccessKeyId"] == key[0] for e in entries)
    assert all(e["Source"].startswith("127.0.0.1:") for e in entries)
    assert rb["RequestId"] == reboot.request_id and rb["Outcome"] == "Success"
    assert set(ids) <= set(rb["ResourceIds"]) and reboot.tasks.parent_task_id in rb["ResourceIds"]
    assert set(ids) <= set(create["ResourceIds"]) or create["ResourceIds"], create
    assert stop["Outcome"] == "InvalidAndroidInstanceIds.NotFound" and stop["RequestId"] == bad.request_id
    after = json.loads(admin(server, "audit", "--account", "acct-audit", "--after-id", str(rb["Id"]),
                             "--output", "json").stdout)
    assert [e["Action"] for e in after] == ["StopAndroidInstance"]
    table = admin(server, "audit", "--action", "RebootAndroidInstancesInGroup").stdout
    assert reboot.request_id in table

    # An upload through the object routes is a mutating call too.
    src = server.data_dir.parent / "audited-upload.txt"
    src.write_text("hello")
    env = dict(os.environ, CLOUDPHONE_ENDPOINT=f"http://{server.endpoint}", CLOUDPHONE_ACCESS_KEY_ID=key[0],
               CLOUDPHONE_ACCESS_KEY_SECRET=key[1])
    subprocess.run([str(BINARY), "cp", str(src), "oss://audit-bucket-x/in/a.txt"], env=env, check=True,
                   capture_output=True, timeout=60)
    [put] = json.loads(admin(server, "audit", "--account", "acct-audit", "--after-id", str(stop["Id"]),
                             "--output", "json").stdout)
    assert put["ResourceIds"] == ["oss://audit-bucket-x/in/a.txt"] and put["Outcome"] == "Success"


def test_secrets_are_owner_only_and_never_logged(server):
    key = new_key(server, "acct-secret", "erin")
    regions(server.client(key=key))
    if not server.database:
        for name in ("cloudphone.db", "cloudphone.nonces.db"):
            mode = stat.S_IMODE((server.data_dir / name).stat().st_mode)
            assert mode & 0o077 == 0, (name, oct(mode))
    log = (server.data_dir.parent / f"{server.data_dir.name}.log").read_bytes()
    assert key[1].encode() not in log and server.key[1].encode() not in log
