"""Isolation between accounts. Account A owns groups, phones, a batch of every task-producing
operation (all 16 task types), backups, apps, objects in its buckets, NextTokens and signed links.
Account B then tries every one of the 29 actions with A's ids, tokens, links and bucket names.

The rule each case is held to: B's answer for A's resource is exactly its answer for a made-up
value of the same shape (same HTTP status, same Code, same Message once the value itself is
blanked out), so that nothing tells B that A's resource exists. A refused call creates nothing
(B's task count is unchanged) and changes nothing of A's (A's phones, groups, apps, backups and
tasks are compared with A's own key after every case). Listings filtered by A's ids are empty
for B (and, as a control, not for A); B's unfiltered listings never contain any of A's values;
A's NextTokens are refused to B as a forged token is. The web console, signed in as B, shows
nothing of A's either."""

import hashlib
import http.client
import json
import os
import random
import re
import string
import subprocess
import uuid
from dataclasses import dataclass, field, fields
from urllib.parse import urlsplit

import pytest
import requests
from alibabacloud_eds_aic20230930 import models
from alibabacloud_tea_openapi.exceptions import ClientException

from conftest import (API_VERSION, BINARY, acs3_signature, create_group, describe_instances, new_nonce, pct,
                      tasks_of, total_tasks, utc_now, wait_batch, wait_for)

IMAGE = "imgc-simandroid140000"
OTHER_IMAGE = "imgc-simandroid120000"
ENDPOINT = "oss-cn-hangzhou.aliyuncs.com"
B36 = string.digits + string.ascii_lowercase
TOKEN_CHARS = string.ascii_letters + string.digits + "-_"
TASK_TYPES = ["RunCommand", "StartInstance", "StopInstance", "RebootInstance", "ResetInstance", "BackupFile",
              "RecoverFile", "SendFile", "FetchFile", "InstallApp", "UninstallApp", "StartApp", "StopApp",
              "RestartApp", "Screenshot", "UpdateGroupImage"]
ACTIONS = ["DescribeTasks", "RunCommand", "RunSyncCommand", "DescribeInvocations", "StartAndroidInstance",
           "StopAndroidInstance", "RebootAndroidInstancesInGroup", "ResetAndroidInstancesInGroup", "BackupFile",
           "RecoveryFile", "DescribeBackupFiles", "DeleteBackupFile", "SendFile", "FetchFile", "InstallApp",
           "UninstallApp", "OperateApp", "CreateApp", "DescribeApps", "DeleteApps", "CreateScreenshot",
           "UpdateInstanceGroupImage", "CreateAndroidInstanceGroup", "DescribeAndroidInstanceGroups",
           "DescribeAndroidInstances", "DeleteAndroidInstanceGroup", "ModifyAndroidInstance", "DescribeImageList",
           "DescribeRegions"]
LISTINGS = ["DescribeTasks", "DescribeAndroidInstances", "DescribeAndroidInstanceGroups", "DescribeBackupFiles",
            "DescribeApps"]


# --- the two sets of values B tries: A's, and made-up ones of the same shape -------------------

@dataclass
class Task:
    invoke: str  # the call's RequestId (InvokeId)
    batch: str   # the Level 1 task
    child: str   # one Level 2 task


@dataclass
class Values:
    """What B tries. One instance holds A's real values, another made-up values of the same
    shape under the same names, so that one request builder serves both."""
    phone: str           # A's RUNNING phone (renamed to `phone_name`; most of A's tasks ran on it)
    stopped: str         # A's STOPPED phone
    spare: str           # A's third phone (reset, then restored from a backup)
    phone2: str          # the phone of A's second group
    group: str           # A's group of the three phones above
    group2: str          # A's second group (moved to another image)
    phone_name: str
    group_name: str
    tag: str             # the value of A's group tag `owner`
    client_token: str    # the ClientToken A created its group with
    command: str         # A's RunCommand CommandContent (matched by DescribeTasks.Param)
    sync_invoke: str     # the InvocationId of A's RunSyncCommand
    backup: str          # A's backup of `phone`
    backup2: str         # A's backup of `spare`
    backup_name: str
    backup_desc: str
    backup_path: str     # the archive of `backup` in A's bucket
    app: int             # A's app made from its APK in the object store
    app2: int            # A's app made from CustomAppInfo
    app_name: str
    md5: str             # the MD5 of A's APK
    bucket: str          # A's bucket
    default_bucket: str  # A's default bucket (cloudphone-saved-bucket-<region>-<account>)
    object: str          # oss:// path of A's uploaded file
    apk: str             # oss:// path of A's APK
    apk_folder: str
    apk_file: str
    fetched: str         # oss:// path where A's FetchFile put its file
    shot: str            # oss:// path of A's screenshot
    link: str            # the signed download link in A's FetchFile result
    shot_link: str       # the signed download link in A's screenshot result
    tasks: dict = field(default_factory=dict)   # TaskType -> Task
    tokens: dict = field(default_factory=dict)  # listing -> A's NextToken (MaxResults=1)

    def pairs(self):
        """(name, text) of every value, nested ones flattened."""
        out = []
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, dict):
                for k, item in v.items():
                    if isinstance(item, Task):
                        out += [(f"{f.name}.{k}.invoke", item.invoke), (f"{f.name}.{k}.batch", item.batch),
                                (f"{f.name}.{k}.child", item.child)]
                    else:
                        out.append((f"{f.name}.{k}", str(item)))
            else:
                out.append((f.name, str(v)))
        return out

    def secrets(self):
        """A's values that must never appear in anything B is shown (numbers aside: an app id
        like 7 is in every listing's TotalCount; and the image list's token, which is no
        account's: see test_image_list_tokens_are_not_accounts_data; and the bucket names alone:
        every account has its own, so B's own tasks may name the same ones, see
        test_b_writing_into_a_bucket_writes_into_its_own_as_into_a_name_nobody_used)."""
        return {v for n, v in self.pairs() if not v.isdigit() and len(v) > 4
                and n not in ("tokens.DescribeImageList", "bucket", "default_bucket")}


def made_up_id(real):
    """An id of the same prefix and length that was never issued (ids start with the time)."""
    prefix = real[:real.index("-") + 1]
    return prefix + "0000" + "".join(random.choice(B36) for _ in range(len(real) - len(prefix) - 4))


def made_up_token(real):
    return "".join(random.choice(TOKEN_CHARS) for _ in real)


def made_up_invoke():
    return str(uuid.uuid4()).upper()


REQUEST_ID = re.compile(r"[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}")


def blank(text, values, numbers=True):
    """`text` with every value of `values` replaced by its name (longest first, whole words),
    then any other request id replaced by <RequestId>."""
    for name, v in sorted(values.pairs(), key=lambda p: -len(p[1])):
        if v.isdigit():
            if not numbers:
                continue
            # A number (an app id) only as a word of a sentence: "The AppIdList 7 does not exist."
            pattern = rf"(?<= ){v}(?= |\.(?!\d))"
        else:
            pattern = rf"(?<![A-Za-z0-9]){re.escape(v)}(?![A-Za-z0-9])"
        text = re.sub(pattern, f"<{name}>", text)
    return REQUEST_ID.sub("<RequestId>", text)


def outcome(fn):
    """What B was answered: ("refused", status, Code, Message) or ("answered", body without
    its RequestId)."""
    try:
        r = fn()
    except ClientException as e:
        return ("refused", e.status_code, e.code, e.data.get("Message"))
    body = dict(r) if isinstance(r, dict) else r.body.to_map()
    body.pop("RequestId", None)
    return ("answered", body)


def same_answer(fn, world, expected=None):
    """B's outcome for A's values and for the made-up ones: equal once blanked; returns A's."""
    got = outcome(lambda: fn(world.b, world.A, world.mine))
    fake = outcome(lambda: fn(world.b, world.FAKE, world.mine))
    assert blank(json.dumps(got, sort_keys=True), world.A) == blank(json.dumps(fake, sort_keys=True), world.FAKE), \
        f"A's value: {got}\nmade-up:   {fake}"
    if expected is not None:
        assert got[0] == "refused" and got[2] == expected, got
    return got


# --- object store and console helpers ----------------------------------------------------------

def cp(server, src, dst, key):
    env = dict(os.environ, CLOUDPHONE_ACCESS_KEY_ID=key[0], CLOUDPHONE_ACCESS_KEY_SECRET=key[1],
               CLOUDPHONE_ENDPOINT=f"http://{server.endpoint}")
    return subprocess.run([str(BINARY), "cp", str(src), str(dst)], env=env, capture_output=True, timeout=60)


def upload(server, key, tmp, path, data):
    local = tmp / hashlib.sha256(path.encode()).hexdigest()
    local.write_bytes(data)
    r = cp(server, local, path, key)
    assert r.returncode == 0, r.stderr


def make_apk(tmp, package):
    out = tmp / f"{package}.apk"
    subprocess.run([str(BINARY), "dev", "make-apk", "--package", package, str(out)], check=True)
    return out.read_bytes()


def object_route(oss_path):
    bucket, key = oss_path[len("oss://"):].split("/", 1)
    return f"/files/{pct(bucket)}/" + "/".join(pct(s) for s in key.split("/"))


def object_request(server, key, method, oss_path, body=b""):
    """GET or PUT on the object route of `oss_path`, signed with `key` as `cloudphone cp` signs."""
    target = object_route(oss_path)
    h = {"host": server.endpoint, "x-acs-action": "PutObject" if method == "PUT" else "GetObject",
         "x-acs-version": API_VERSION, "x-acs-date": utc_now(), "x-acs-signature-nonce": new_nonce(),
         "x-acs-content-sha256": hashlib.sha256(body).hexdigest()}
    signed = sorted(h)
    sig = acs3_signature(method, target, [], h, signed, body, key[1])
    h["authorization"] = f"ACS3-HMAC-SHA256 Credential={key[0]},SignedHeaders={';'.join(signed)},Signature={sig}"
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        for k, v in h.items():
            conn.putheader(k, v)
        conn.putheader("content-length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def http_outcome(status, content):
    """A raw HTTP answer in the shape of `outcome`."""
    if status >= 400:
        body = json.loads(content)
        return ("refused", status, body["Code"], body["Message"])
    return ("answered", status, hashlib.sha256(content).hexdigest())


def repoint(link, oss_path):
    """`link` with its path changed to that of `oss_path`, its Expires and Signature kept."""
    u = urlsplit(link)
    return f"{u.scheme}://{u.netloc}{object_route(oss_path)}?{u.query}"


# --- the world: A's resources, B's own, and C's bucket -----------------------------------------

def wait_all(client, request_ids):
    for r in request_ids:
        wait_batch(client, r, timeout=60)


def task_of(client, request_id):
    (batch,) = tasks_of(client, invoke_id=request_id, level=1)
    children = tasks_of(client, invoke_id=request_id, level=2)
    return Task(request_id, batch.task_id, children[0].task_id)


def first_token(client, listing):
    return LISTING_CALLS[listing](client, None).body.next_token


LISTING_CALLS = {
    "DescribeTasks": lambda c, t: c.describe_tasks(models.DescribeTasksRequest(max_results=1, next_token=t)),
    "DescribeAndroidInstances": lambda c, t: c.describe_android_instances(
        models.DescribeAndroidInstancesRequest(max_results=1, next_token=t)),
    "DescribeAndroidInstanceGroups": lambda c, t: c.describe_android_instance_groups(
        models.DescribeAndroidInstanceGroupsRequest(max_results=1, next_token=t)),
    "DescribeBackupFiles": lambda c, t: c.describe_backup_files(
        models.DescribeBackupFilesRequest(max_results=1, next_token=t)),
    "DescribeApps": lambda c, t: c.describe_apps(models.DescribeAppsRequest(max_results=1, next_token=t)),
    "DescribeImageList": lambda c, t: c.describe_image_list(
        models.DescribeImageListRequest(image_type="System", max_results=1, next_token=t)),
}


def build_a(server, a, key_a, tmp):
    """A's resources, made through the SDK; every batch waited for."""
    sfx = uuid.uuid4().hex[:8]
    bucket = f"cloudphone-saved-bucket-isoa-{sfx}"
    client_token = f"isoA-token-{sfx}"
    r = a.create_android_instance_group(models.CreateAndroidInstanceGroupRequest(
        biz_region_id="cn-hangzhou", image_id=IMAGE, instance_group_spec="acp.basic.small", number_of_instances=3,
        instance_group_name="isoAsecretGroup", client_token=client_token,
        tag=[models.CreateAndroidInstanceGroupRequestTag(key="owner", value="isoAsecretTag")])).body
    group, (phone, stopped, spare) = r.instance_group_ids[0], r.instance_group_infos[0].instance_ids
    group2, (phone2,) = create_group(a, 1, name="isoAsecondGroup")
    wait_for(lambda: all(m.android_instance_status == "RUNNING"
                         for m in describe_instances(a, [phone, stopped, spare]).values()), what="A's phones")
    a.modify_android_instance(models.ModifyAndroidInstanceRequest(
        android_instance_id=phone, new_android_instance_name="isoAsecretPhone"))

    obj, apk = f"oss://{bucket}/in/secret.txt", f"oss://{bucket}/apks/com.isoa.secret.apk"
    upload(server, key_a, tmp, obj, b"A's secret file\n")
    apk_bytes = make_apk(tmp, "com.isoa.secret")
    upload(server, key_a, tmp, apk, apk_bytes)
    app = a.create_app(models.CreateAppRequest(oss_app_url=apk, app_name="isoAsecretApp")).body.app_id
    custom = models.CreateAppRequestCustomAppInfo(
        apk_size="1.0", download_url="http://127.0.0.1:9/isoa.apk", md_5="b" * 32, package_name="com.isoa.custom",
        version="1.0", version_code="1")
    app2 = a.create_app(models.CreateAppRequest(app_name="isoAsecondApp", custom_app_info=custom)).body.app_id

    tasks = {}
    command = "echo isoAsecretCommand"
    sync = a.run_sync_command(models.RunSyncCommandRequest(instance_ids=[phone], command_content="echo isoAsync",
                                                           wait_time=3000)).body
    (sync_invoke,) = {d.invocation_id for d in sync.data}
    run = a.run_command(models.RunCommandRequest(instance_ids=[phone], command_content=command)).body
    send = a.send_file(models.SendFileRequest(android_instance_id_list=[phone], upload_url=obj,
                                              source_file_path="/sdcard/Download/", upload_type="OSS",
                                              upload_endpoint=ENDPOINT)).body
    stop = a.stop_android_instance(models.StopAndroidInstanceRequest(android_instance_ids=[stopped])).body
    reset = a.reset_android_instances_in_group(models.ResetAndroidInstancesInGroupRequest(
        android_instance_ids=[spare])).body
    update = a.update_instance_group_image(models.UpdateInstanceGroupImageRequest(
        image_id=OTHER_IMAGE, instance_group_ids=[group2])).body
    shot = a.create_screenshot(models.CreateScreenshotRequest(android_instance_id_list=[phone],
                                                              screenshot_id="isoAshot")).body
    wait_all(a, [sync_invoke, run.invoke_id, send.request_id, stop.request_id, reset.request_id, update.request_id,
                 shot.request_id])
    tasks["RunCommand"] = Task(run.invoke_id, run.task_id, run.run_command_infos[0].child_task_id)
    for kind, rid in (("SendFile", send.request_id), ("StopInstance", stop.request_id),
                      ("ResetInstance", reset.request_id), ("UpdateGroupImage", update.request_id),
                      ("Screenshot", shot.request_id)):
        tasks[kind] = task_of(a, rid)

    fetch = a.fetch_file(models.FetchFileRequest(android_instance_id_list=[phone],
                                                 source_file_path="/sdcard/Download/secret.txt", upload_type="OSS",
                                                 upload_url=f"oss://{bucket}/out", upload_endpoint=ENDPOINT)).body
    backup = a.backup_file(models.BackupFileRequest(
        android_instance_id_list=[phone, spare], backup_file_path=f"oss://{bucket}/backups",
        source_file_path_list=["/sdcard/Download"], backup_file_name="isoAnightly", description="isoA secret backup",
        upload_type="OSS", upload_endpoint=ENDPOINT)).body
    install = a.install_app(models.InstallAppRequest(app_id_list=[str(app)], instance_id_list=[phone])).body
    start = a.start_android_instance(models.StartAndroidInstanceRequest(android_instance_ids=[stopped])).body
    wait_all(a, [fetch.request_id, backup.request_id, install.request_id, start.request_id])
    for kind, rid in (("FetchFile", fetch.request_id), ("BackupFile", backup.request_id),
                      ("InstallApp", install.request_id), ("StartInstance", start.request_id)):
        tasks[kind] = task_of(a, rid)

    recover = a.recovery_file(models.RecoveryFileRequest(
        android_instance_id_list=[spare], backup_file_id=backup.data[0].backup_file_id, upload_type="OSS",
        upload_endpoint=ENDPOINT)).body
    operate = {kind: a.operate_app(models.OperateAppRequest(app_id=app, instance_id_list=[phone], operate_type=op)).body
               for kind, op in (("StartApp", "start"), ("StopApp", "stop"), ("RestartApp", "restart"))}
    stop_again = a.stop_android_instance(models.StopAndroidInstanceRequest(android_instance_ids=[stopped])).body
    wait_all(a, [recover.request_id, stop_again.request_id] + [o.request_id for o in operate.values()])
    tasks["RecoverFile"] = task_of(a, recover.request_id)
    for kind, o in operate.items():
        tasks[kind] = task_of(a, o.request_id)

    uninstall = a.uninstall_app(models.UninstallAppRequest(app_id_list=[str(app)], instance_id_list=[phone])).body
    reboot = a.reboot_android_instances_in_group(models.RebootAndroidInstancesInGroupRequest(
        android_instance_ids=[phone])).body
    wait_all(a, [uninstall.request_id, reboot.request_id])
    tasks["UninstallApp"] = task_of(a, uninstall.request_id)
    tasks["RebootInstance"] = task_of(a, reboot.request_id)
    assert sorted(tasks) == sorted(TASK_TYPES)

    wait_for(lambda: sorted(m.android_instance_status for m in describe_instances(
        a, [phone, stopped, spare, phone2]).values()) == ["RUNNING"] * 3 + ["STOPPED"], what="A's phones settled")
    wait_for(lambda: all(g.instance_group_status == "RUNNING" for g in a.describe_android_instance_groups(
        models.DescribeAndroidInstanceGroupsRequest(instance_group_ids=[group, group2])).body.instance_group_model),
        what="A's groups RUNNING")

    (fetched,) = tasks_of(a, invoke_id=fetch.request_id, level=2)
    (shot_task,) = tasks_of(a, invoke_id=shot.request_id, level=2)
    assert fetched.task_status == shot_task.task_status == "Finished", (fetched.error_msg, shot_task.error_msg)
    fetched_result, shot_result = json.loads(fetched.result), json.loads(shot_task.result)
    (b1,) = a.describe_backup_files(models.DescribeBackupFilesRequest(
        backup_file_id=backup.data[0].backup_file_id)).body.data
    assert b1.status == "AVAILABLE"
    default_bucket = shot_result["OssPath"][len("oss://"):].split("/", 1)[0]
    assert default_bucket == "cloudphone-saved-bucket-cn-hangzhou-iso-a"
    tokens = {listing: first_token(a, listing) for listing in LISTING_CALLS}
    assert all(tokens.values()), tokens
    return Values(
        phone=phone, stopped=stopped, spare=spare, phone2=phone2, group=group, group2=group2,
        phone_name="isoAsecretPhone", group_name="isoAsecretGroup", tag="isoAsecretTag", client_token=client_token,
        command=command, sync_invoke=sync_invoke,
        backup=backup.data[0].backup_file_id, backup2=backup.data[1].backup_file_id,
        backup_name="isoAnightly", backup_desc="isoA secret backup", backup_path=b1.backup_file_path,
        app=app, app2=app2, app_name="isoAsecretApp", md5=hashlib.md5(apk_bytes).hexdigest(), bucket=bucket,
        default_bucket=default_bucket, object=obj, apk=apk, apk_folder=f"oss://{bucket}/apks",
        apk_file="com.isoa.secret.apk", fetched=fetched_result["OssPath"], shot=shot_result["OssPath"],
        link=fetched_result["Url"], shot_link=shot_result["Url"], tasks=tasks, tokens=tokens)


def made_up(A):
    """Values of the same shape as A's that no account has."""
    bucket = "cloudphone-saved-bucket-isoz-" + uuid.uuid4().hex[:8]
    default_bucket = "cloudphone-saved-bucket-cn-hangzhou-iso-z"
    moved = lambda v: v.replace(A.bucket, bucket).replace(A.default_bucket, default_bucket)  # noqa: E731
    fake = {}
    for f in fields(Values):
        v = getattr(A, f.name)
        if f.name in ("app", "app2"):
            fake[f.name] = v + 10_000_000
        elif f.name == "tasks":
            fake[f.name] = {k: Task(made_up_invoke(), made_up_id(t.batch), made_up_id(t.child)) for k, t in v.items()}
        elif f.name == "tokens":
            fake[f.name] = {k: made_up_token(t) for k, t in v.items()}
        elif f.name == "md5":
            fake[f.name] = uuid.uuid4().hex
        elif f.name in ("bucket", "default_bucket"):
            fake[f.name] = {"bucket": bucket, "default_bucket": default_bucket}[f.name]
        elif f.name == "sync_invoke":
            fake[f.name] = made_up_invoke()
        elif re.fullmatch(r"(acp|ag|bf)-[0-9a-z]{16}", v):
            fake[f.name] = made_up_id(v)
        elif "isoA" in v:
            fake[f.name] = v.replace("isoA", "isoZ")
        else:
            fake[f.name] = moved(v)
    # The paths of A's objects keep their keys, in the made-up bucket (the ids in them made up too).
    for name in ("backup_path", "fetched", "shot", "link", "shot_link"):
        fake[name] = moved(getattr(A, name)).replace(A.backup, fake["backup"]).replace(A.phone, fake["phone"])
    return Values(**fake)


@dataclass
class World:
    server: object
    a: object
    b: object
    key_a: tuple
    key_b: tuple
    A: Values
    FAKE: Values
    mine: object       # B's own resources


@dataclass
class Mine:
    phone: str
    group: str
    bucket: str
    object: str
    app: int
    backup: str


@pytest.fixture(scope="module")
def world(server, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("isolation")
    key_a, key_b = server.create_key("iso-a"), server.create_key("iso-b")
    a, b = server.client(key=key_a), server.client(key=key_b)
    A = build_a(server, a, key_a, tmp)
    # B's own: a phone, a bucket with a file and an APK, an app, a backup.
    sfx = uuid.uuid4().hex[:8]
    group, (phone,) = create_group(b, 1, name="isoBgroup")
    touched = b.run_command(models.RunCommandRequest(instance_ids=[phone], command_content="touch /sdcard/b.txt"))
    wait_batch(b, touched.body.invoke_id)
    bucket = f"cloudphone-saved-bucket-isob-{sfx}"
    upload(server, key_b, tmp, f"oss://{bucket}/in/mine.txt", b"B's file\n")
    upload(server, key_b, tmp, f"oss://{bucket}/apks/b.apk", make_apk(tmp, "com.isob.app"))
    app = b.create_app(models.CreateAppRequest(oss_app_url=f"oss://{bucket}/apks/b.apk")).body.app_id
    backup = b.backup_file(models.BackupFileRequest(
        android_instance_id_list=[phone], backup_file_path=f"oss://{bucket}/backups", backup_all=True,
        upload_type="OSS", upload_endpoint=ENDPOINT)).body
    wait_batch(b, backup.request_id)
    mine = Mine(phone, group, bucket, f"oss://{bucket}/in/mine.txt", app, backup.data[0].backup_file_id)
    return World(server, a, b, key_a, key_b, A, made_up(A), mine)


def a_state(w):
    """Everything of A's that a call of B might change, read with A's key."""
    a, A = w.a, w.A
    phones = describe_instances(a, [A.phone, A.stopped, A.spare, A.phone2])
    groups = a.describe_android_instance_groups(models.DescribeAndroidInstanceGroupsRequest(max_results=100)).body
    apps = a.describe_apps(models.DescribeAppsRequest(max_results=100)).body
    backups = a.describe_backup_files(models.DescribeBackupFilesRequest(max_results=100)).body
    return {
        "phones": {i: (m.android_instance_status, m.android_instance_name, m.image_id, m.android_instance_group_id,
                       m.up_bandwidth_limit, m.down_bandwidth_limit) for i, m in phones.items()},
        "groups": {g.instance_group_id: (g.instance_group_status, g.instance_group_name, g.image_id,
                                         g.number_of_instances) for g in groups.instance_group_model},
        "apps": {d.app_id: (d.app_name, d.package_name, d.installation_status, d.md5) for d in apps.data},
        "backups": {d.backup_file_id: (d.status, d.backup_file_name, d.backup_file_path, d.file_size)
                    for d in backups.data},
        "tasks": sorted((t.task_id, t.task_status) for t in tasks_of(a)),
    }


@pytest.fixture(scope="module")
def a_before(world):
    state = a_state(world)
    assert len(state["phones"]) == 4 and len(state["groups"]) == 2 and len(state["apps"]) == 2
    assert len(state["backups"]) == 2 and len(state["tasks"]) >= 32
    assert state["phones"][world.A.stopped][0] == "STOPPED"
    assert [s[0] for i, s in state["phones"].items() if i != world.A.stopped] == ["RUNNING"] * 3
    return state


# --- 1. B acting on A's resources: refused exactly as for made-up ones -------------------------

M = models  # the rows below stay one line each
REFUSED = [
    # (action, what B sends, the Code B must get for A's value and for a made-up one, the call)
    ("StartAndroidInstance", "A's STOPPED phone", "InvalidAndroidInstanceIds.NotFound",
     lambda c, x, b: c.start_android_instance(M.StartAndroidInstanceRequest(android_instance_ids=[x.stopped]))),
    ("StartAndroidInstance", "B's phone, then A's STOPPED one", "InvalidAndroidInstanceIds.NotFound",
     lambda c, x, b: c.start_android_instance(M.StartAndroidInstanceRequest(
         android_instance_ids=[b.phone, x.stopped]))),
    ("StopAndroidInstance", "A's RUNNING phone", "InvalidAndroidInstanceIds.NotFound",
     lambda c, x, b: c.stop_android_instance(M.StopAndroidInstanceRequest(android_instance_ids=[x.phone]))),
    ("StopAndroidInstance", "B's and A's phones, ForceStop", "InvalidAndroidInstanceIds.NotFound",
     lambda c, x, b: c.stop_android_instance(M.StopAndroidInstanceRequest(android_instance_ids=[b.phone, x.phone],
                                                                          force_stop=True))),
    ("RebootAndroidInstancesInGroup", "A's phone", "InvalidAndroidInstanceIds.NotFound",
     lambda c, x, b: c.reboot_android_instances_in_group(M.RebootAndroidInstancesInGroupRequest(
         android_instance_ids=[x.phone]))),
    ("RebootAndroidInstancesInGroup", "A's STOPPED phone and A's second group's", "InvalidAndroidInstanceIds.NotFound",
     lambda c, x, b: c.reboot_android_instances_in_group(M.RebootAndroidInstancesInGroupRequest(
         android_instance_ids=[x.stopped, x.phone2]))),
    ("ResetAndroidInstancesInGroup", "A's phone", "InvalidAndroidInstanceIds.NotFound",
     lambda c, x, b: c.reset_android_instances_in_group(M.ResetAndroidInstancesInGroupRequest(
         android_instance_ids=[x.phone]))),
    ("ResetAndroidInstancesInGroup", "B's phone, then A's spare", "InvalidAndroidInstanceIds.NotFound",
     lambda c, x, b: c.reset_android_instances_in_group(M.ResetAndroidInstancesInGroupRequest(
         android_instance_ids=[b.phone, x.spare]))),
    ("RunCommand", "A's phone", "InvalidInstanceIds.NotFound",
     lambda c, x, b: c.run_command(M.RunCommandRequest(instance_ids=[x.phone], command_content="id"))),
    ("RunCommand", "B's phone, then A's", "InvalidInstanceIds.NotFound",
     lambda c, x, b: c.run_command(M.RunCommandRequest(instance_ids=[b.phone, x.phone], command_content="id"))),
    ("RunSyncCommand", "A's phone", "InvalidInstanceIds.NotFound",
     lambda c, x, b: c.run_sync_command(M.RunSyncCommandRequest(instance_ids=[x.phone], command_content="id",
                                                                wait_time=500))),
    ("DescribeInvocations", "A's InvokeId on A's phone", "InvalidInvocationId.NotFound",
     lambda c, x, b: c.describe_invocations(M.DescribeInvocationsRequest(
         invocation_id=x.tasks["RunCommand"].invoke, instance_ids=[x.phone]))),
    ("DescribeInvocations", "A's RunSyncCommand InvocationId on A's phone", "InvalidInvocationId.NotFound",
     lambda c, x, b: c.describe_invocations(M.DescribeInvocationsRequest(
         invocation_id=x.sync_invoke, instance_ids=[x.phone]))),
    ("DescribeInvocations", "A's InvokeId on B's phone", "InvalidInvocationId.NotFound",
     lambda c, x, b: c.describe_invocations(M.DescribeInvocationsRequest(
         invocation_id=x.tasks["RunCommand"].invoke, instance_ids=[b.phone]))),
    ("DeleteAndroidInstanceGroup", "A's group", "InvalidInstanceGroupIds.NotFound",
     lambda c, x, b: c.delete_android_instance_group(M.DeleteAndroidInstanceGroupRequest(
         instance_group_ids=[x.group]))),
    ("DeleteAndroidInstanceGroup", "B's group, then A's second", "InvalidInstanceGroupIds.NotFound",
     lambda c, x, b: c.delete_android_instance_group(M.DeleteAndroidInstanceGroupRequest(
         instance_group_ids=[b.group, x.group2]))),
    ("ModifyAndroidInstance", "AndroidInstanceId = A's phone (rename)", "InvalidAndroidInstanceId.NotFound",
     lambda c, x, b: c.modify_android_instance(M.ModifyAndroidInstanceRequest(
         android_instance_id=x.phone, new_android_instance_name="stolen"))),
    ("ModifyAndroidInstance", "InstanceIds = B's and A's phones (bandwidth)", "InvalidInstanceIds.NotFound",
     lambda c, x, b: c.modify_android_instance(M.ModifyAndroidInstanceRequest(
         instance_ids=[b.phone, x.stopped], up_bandwidth_limit=1, down_bandwidth_limit=1))),
    ("UpdateInstanceGroupImage", "A's group", "InvalidInstanceGroupIds.NotFound",
     lambda c, x, b: c.update_instance_group_image(M.UpdateInstanceGroupImageRequest(
         image_id=OTHER_IMAGE, instance_group_ids=[x.group]))),
    ("UpdateInstanceGroupImage", "A's second group, back to its first image", "InvalidInstanceGroupIds.NotFound",
     lambda c, x, b: c.update_instance_group_image(M.UpdateInstanceGroupImageRequest(
         image_id=IMAGE, instance_group_ids=[x.group2]))),
    ("SendFile", "A's phone, B's file", "InvalidAndroidInstanceIdList.NotFound",
     lambda c, x, b: c.send_file(M.SendFileRequest(android_instance_id_list=[x.phone], upload_url=b.object,
                                                   source_file_path="/sdcard/", upload_type="OSS",
                                                   upload_endpoint=ENDPOINT))),
    ("SendFile", "B's phone, source = A's object (oss://)", "InvalidUploadUrl.NotFound",
     lambda c, x, b: c.send_file(M.SendFileRequest(android_instance_id_list=[b.phone], upload_url=x.object,
                                                   source_file_path="/sdcard/", upload_type="OSS",
                                                   upload_endpoint=ENDPOINT))),
    ("SendFile", "B's phone, source = A's APK (oss://)", "InvalidUploadUrl.NotFound",
     lambda c, x, b: c.send_file(M.SendFileRequest(android_instance_id_list=[b.phone], upload_url=x.apk,
                                                   source_file_path="/sdcard/", upload_type="OSS",
                                                   upload_endpoint=ENDPOINT))),
    ("FetchFile", "A's phone, into B's bucket", "InvalidAndroidInstanceIdList.NotFound",
     lambda c, x, b: c.fetch_file(M.FetchFileRequest(android_instance_id_list=[x.phone],
                                                     source_file_path="/sdcard/Download/secret.txt", upload_type="OSS",
                                                     upload_url=f"oss://{b.bucket}/out", upload_endpoint=ENDPOINT))),
    ("BackupFile", "A's phone, into B's bucket", "InvalidAndroidInstanceIdList.NotFound",
     lambda c, x, b: c.backup_file(M.BackupFileRequest(android_instance_id_list=[x.phone], backup_all=True,
                                                       backup_file_path=f"oss://{b.bucket}/stolen", upload_type="OSS",
                                                       upload_endpoint=ENDPOINT))),
    ("RecoveryFile", "B's phone, BackupFileId = A's backup", "InvalidBackupFileId.NotFound",
     lambda c, x, b: c.recovery_file(M.RecoveryFileRequest(android_instance_id_list=[b.phone], backup_file_id=x.backup,
                                                           upload_type="OSS", upload_endpoint=ENDPOINT))),
    ("RecoveryFile", "B's phone, BackupFilePath = A's archive", "InvalidBackupFilePath.NotFound",
     lambda c, x, b: c.recovery_file(M.RecoveryFileRequest(android_instance_id_list=[b.phone],
                                                           backup_file_path=x.backup_path, upload_type="OSS",
                                                           upload_endpoint=ENDPOINT))),
    ("RecoveryFile", "A's phone, B's backup", "InvalidAndroidInstanceIdList.NotFound",
     lambda c, x, b: c.recovery_file(M.RecoveryFileRequest(android_instance_id_list=[x.spare], backup_file_id=b.backup,
                                                           upload_type="OSS", upload_endpoint=ENDPOINT))),
    ("DeleteBackupFile", "A's backup", "InvalidBackupFileId.NotFound",
     lambda c, x, b: c.delete_backup_file(M.DeleteBackupFileRequest(backup_file_id_list=[x.backup]))),
    ("DeleteBackupFile", "B's backup and A's other one", "InvalidBackupFileId.NotFound",
     lambda c, x, b: c.delete_backup_file(M.DeleteBackupFileRequest(backup_file_id_list=[b.backup, x.backup2]))),
    ("CreateApp", "OssAppUrl = A's APK", "InvalidOssAppUrl.NotFound",
     lambda c, x, b: c.create_app(M.CreateAppRequest(oss_app_url=x.apk, app_name="stolen"))),
    ("CreateApp", "FilePath + FileName = A's APK", "InvalidOssAppUrl.NotFound",
     lambda c, x, b: c.create_app(M.CreateAppRequest(file_path=x.apk_folder, file_name=x.apk_file))),
    ("CreateApp", "OssAppUrl = A's FetchFile link re-pointed at A's APK", "InvalidParameter.OssAppUrl",
     lambda c, x, b: c.create_app(M.CreateAppRequest(oss_app_url=repoint(x.link, x.apk)))),
    ("DeleteApps", "A's app", "InvalidAppIdList.NotFound",
     lambda c, x, b: c.delete_apps(M.DeleteAppsRequest(app_id_list=[str(x.app)]))),
    ("DeleteApps", "B's app and A's other one", "InvalidAppIdList.NotFound",
     lambda c, x, b: c.delete_apps(M.DeleteAppsRequest(app_id_list=[str(b.app), str(x.app2)]))),
    ("InstallApp", "A's app on B's phone", "InvalidAppIdList.NotFound",
     lambda c, x, b: c.install_app(M.InstallAppRequest(app_id_list=[str(x.app)], instance_id_list=[b.phone]))),
    ("InstallApp", "B's app on A's phone", "InvalidInstanceIdList.NotFound",
     lambda c, x, b: c.install_app(M.InstallAppRequest(app_id_list=[str(b.app)], instance_id_list=[x.phone]))),
    ("InstallApp", "B's app on A's group (InstanceGroupIdList)", "InvalidInstanceGroupIdList.NotFound",
     lambda c, x, b: c.install_app(M.InstallAppRequest(app_id_list=[str(b.app)], instance_group_id_list=[x.group]))),
    ("UninstallApp", "A's app from B's phone", "InvalidAppIdList.NotFound",
     lambda c, x, b: c.uninstall_app(M.UninstallAppRequest(app_id_list=[str(x.app)], instance_id_list=[b.phone]))),
    ("UninstallApp", "B's app from A's phone", "InvalidInstanceIdList.NotFound",
     lambda c, x, b: c.uninstall_app(M.UninstallAppRequest(app_id_list=[str(b.app)], instance_id_list=[x.phone]))),
    ("UninstallApp", "B's app from A's group (InstanceGroupIdList)", "InvalidInstanceGroupIdList.NotFound",
     lambda c, x, b: c.uninstall_app(M.UninstallAppRequest(app_id_list=[str(b.app)],
                                                           instance_group_id_list=[x.group2]))),
    ("OperateApp", "start A's app on B's phone", "InvalidAppId.NotFound",
     lambda c, x, b: c.operate_app(M.OperateAppRequest(app_id=x.app, instance_id_list=[b.phone],
                                                       operate_type="start"))),
    ("OperateApp", "stop B's app on A's phone", "InvalidInstanceIdList.NotFound",
     lambda c, x, b: c.operate_app(M.OperateAppRequest(app_id=b.app, instance_id_list=[x.phone], operate_type="stop"))),
    ("CreateScreenshot", "A's phone", "InvalidAndroidInstanceIdList.NotFound",
     lambda c, x, b: c.create_screenshot(M.CreateScreenshotRequest(android_instance_id_list=[x.phone]))),
    ("CreateScreenshot", "B's phone, then A's", "InvalidAndroidInstanceIdList.NotFound",
     lambda c, x, b: c.create_screenshot(M.CreateScreenshotRequest(android_instance_id_list=[b.phone, x.phone],
                                                                   screenshot_id="stolen"))),
]


@pytest.mark.parametrize("action,what,code,request_of", REFUSED, ids=[f"{r[0]}: {r[1]}" for r in REFUSED])
def test_b_acting_on_a_is_refused_as_if_nothing_were_there(world, a_before, action, what, code, request_of):
    b_tasks = total_tasks(world.b)
    b_owns = lambda: (world.b.describe_backup_files(models.DescribeBackupFilesRequest()).body.total_count,  # noqa: E731
                      world.b.describe_apps(models.DescribeAppsRequest()).body.total_count)
    b_before = b_owns()
    got = same_answer(request_of, world, expected=code)
    assert got[1] == (404 if code.endswith(".NotFound") else 400), got
    # Nothing was created for B, nothing of B's was deleted, and nothing of A's changed.
    assert total_tasks(world.b) == b_tasks
    assert b_owns() == b_before
    assert a_state(world) == a_before


# --- 2. B's listings filtered by A's values: empty (and, as a control, not empty for A) --------

EMPTY = [
    # (action, the filter, the call)
    ("DescribeTasks", "TaskIds = A's batch and child",
     lambda c, x, b: c.describe_tasks(M.DescribeTasksRequest(task_ids=[x.tasks["RunCommand"].batch,
                                                                        x.tasks["RunCommand"].child]))),
    ("DescribeTasks", "ParentTaskId = A's batch",
     lambda c, x, b: c.describe_tasks(M.DescribeTasksRequest(parent_task_id=x.tasks["RebootInstance"].batch))),
    ("DescribeTasks", "InvokeId = A's RunCommand",
     lambda c, x, b: c.describe_tasks(M.DescribeTasksRequest(invoke_id=x.tasks["RunCommand"].invoke))),
    ("DescribeTasks", "InvokeId = A's RunSyncCommand InvocationId",
     lambda c, x, b: c.describe_tasks(M.DescribeTasksRequest(invoke_id=x.sync_invoke))),
    ("DescribeTasks", "InstanceId = A's phone",
     lambda c, x, b: c.describe_tasks(M.DescribeTasksRequest(instance_id=x.phone))),
    ("DescribeTasks", "InstanceName = A's phone's name",
     lambda c, x, b: c.describe_tasks(M.DescribeTasksRequest(instance_name=x.phone_name))),
    ("DescribeTasks", "ResourceIds = A's phones and group",
     lambda c, x, b: c.describe_tasks(M.DescribeTasksRequest(resource_ids=[x.phone, x.stopped, x.group2]))),
    ("DescribeTasks", "Param = A's command",
     lambda c, x, b: c.describe_tasks(M.DescribeTasksRequest(param=x.command))),
    ("DescribeTasks", "InvokeId + Level 2 + InstanceId of A's",
     lambda c, x, b: c.describe_tasks(M.DescribeTasksRequest(invoke_id=x.tasks["SendFile"].invoke, level=2,
                                                             instance_id=x.phone))),
    ("DescribeAndroidInstances", "AndroidInstanceIds = A's phones",
     lambda c, x, b: c.describe_android_instances(M.DescribeAndroidInstancesRequest(
         android_instance_ids=[x.phone, x.stopped, x.spare, x.phone2]))),
    ("DescribeAndroidInstances", "InstanceGroupId = A's group",
     lambda c, x, b: c.describe_android_instances(M.DescribeAndroidInstancesRequest(instance_group_id=x.group))),
    ("DescribeAndroidInstances", "InstanceGroupIds = A's groups",
     lambda c, x, b: c.describe_android_instances(M.DescribeAndroidInstancesRequest(
         instance_group_ids=[x.group, x.group2]))),
    ("DescribeAndroidInstances", "AndroidInstanceName = A's phone's name",
     lambda c, x, b: c.describe_android_instances(M.DescribeAndroidInstancesRequest(
         android_instance_name=x.phone_name))),
    ("DescribeAndroidInstances", "InstanceGroupName = A's group's name",
     lambda c, x, b: c.describe_android_instances(M.DescribeAndroidInstancesRequest(instance_group_name=x.group_name))),
    ("DescribeAndroidInstanceGroups", "InstanceGroupIds = A's groups",
     lambda c, x, b: c.describe_android_instance_groups(M.DescribeAndroidInstanceGroupsRequest(
         instance_group_ids=[x.group, x.group2]))),
    ("DescribeAndroidInstanceGroups", "InstanceGroupName = A's group's name",
     lambda c, x, b: c.describe_android_instance_groups(M.DescribeAndroidInstanceGroupsRequest(
         instance_group_name=x.group_name))),
    ("DescribeAndroidInstanceGroups", "Tags = A's tag",
     lambda c, x, b: c.describe_android_instance_groups(M.DescribeAndroidInstanceGroupsRequest(
         tags=[M.DescribeAndroidInstanceGroupsRequestTags(key="owner", value=x.tag)]))),
    ("DescribeBackupFiles", "BackupFileId = A's backup",
     lambda c, x, b: c.describe_backup_files(M.DescribeBackupFilesRequest(backup_file_id=x.backup))),
    ("DescribeBackupFiles", "AndroidInstanceId = A's phone",
     lambda c, x, b: c.describe_backup_files(M.DescribeBackupFilesRequest(android_instance_id=x.phone))),
    ("DescribeBackupFiles", "AndroidInstanceName = A's phone's name",
     lambda c, x, b: c.describe_backup_files(M.DescribeBackupFilesRequest(android_instance_name=x.phone_name))),
    ("DescribeBackupFiles", "InstanceGroupId = A's group",
     lambda c, x, b: c.describe_backup_files(M.DescribeBackupFilesRequest(instance_group_id=x.group))),
    ("DescribeBackupFiles", "BackupFileName = A's backups' name",
     lambda c, x, b: c.describe_backup_files(M.DescribeBackupFilesRequest(backup_file_name=x.backup_name))),
    ("DescribeBackupFiles", "Description = A's backups' description",
     lambda c, x, b: c.describe_backup_files(M.DescribeBackupFilesRequest(description=x.backup_desc))),
    ("DescribeApps", "AppIdList = A's apps",
     lambda c, x, b: c.describe_apps(M.DescribeAppsRequest(app_id_list=[str(x.app), str(x.app2)]))),
    ("DescribeApps", "AppName = A's app's name",
     lambda c, x, b: c.describe_apps(M.DescribeAppsRequest(app_name=x.app_name))),
    ("DescribeApps", "MD5 = A's APK's",
     lambda c, x, b: c.describe_apps(M.DescribeAppsRequest(md5=x.md5))),
]
# DescribeTasks by each of A's 16 task types: its batch, its child, the batch as parent, its call.
for _t in TASK_TYPES:
    EMPTY += [
        ("DescribeTasks", f"{_t}: TaskIds = A's batch",
         lambda c, x, b, t=_t: c.describe_tasks(M.DescribeTasksRequest(task_ids=[x.tasks[t].batch]))),
        ("DescribeTasks", f"{_t}: TaskIds = A's child",
         lambda c, x, b, t=_t: c.describe_tasks(M.DescribeTasksRequest(task_ids=[x.tasks[t].child]))),
        ("DescribeTasks", f"{_t}: ParentTaskId = A's batch",
         lambda c, x, b, t=_t: c.describe_tasks(M.DescribeTasksRequest(parent_task_id=x.tasks[t].batch))),
        ("DescribeTasks", f"{_t}: InvokeId = A's call",
         lambda c, x, b, t=_t: c.describe_tasks(M.DescribeTasksRequest(invoke_id=x.tasks[t].invoke, task_type=t))),
    ]


def nothing_in(body):
    total = body.get("TotalCount")
    lists = [v for v in body.values() if isinstance(v, list)]
    return str(total) == "0" and lists and all(v == [] for v in lists) and not body.get("NextToken")


@pytest.mark.parametrize("action,what,request_of", EMPTY, ids=[f"{r[0]}: {r[1]}" for r in EMPTY])
def test_b_filtering_by_a_finds_nothing(world, action, what, request_of):
    # The control: the same filter finds something for A.
    mine = outcome(lambda: request_of(world.a, world.A, world.mine))
    assert mine[0] == "answered" and str(mine[1]["TotalCount"]) != "0", mine
    got = same_answer(request_of, world)
    assert got[0] == "answered" and nothing_in(got[1]), got
    text = json.dumps(got)
    assert not [s for s in world.A.secrets() if s in text], text


# --- 3. A's NextTokens: refused to B as a forged token is --------------------------------------

@pytest.mark.parametrize("listing", LISTINGS)
def test_a_next_token_is_refused_to_b_like_a_forged_one(world, listing):
    page = LISTING_CALLS[listing]
    # A's token continues A's listing for A.
    assert outcome(lambda: page(world.a, world.A.tokens[listing]))[0] == "answered"
    got = same_answer(lambda c, x, b: page(c, x.tokens[listing]), world, expected="InvalidParameter.NextToken")
    assert got[1] == 400
    # B's own listing answers (the refusal is about the token, not about B).
    assert outcome(lambda: page(world.b, None))[0] == "answered"


def test_image_list_tokens_are_not_accounts_data(world):
    """Images are the server's, not an account's: A's token of DescribeImageList is the one B
    gets for the same listing, and the page it opens holds only images B sees itself."""
    page = LISTING_CALLS["DescribeImageList"]
    assert page(world.b, None).body.next_token == world.A.tokens["DescribeImageList"]
    with_a_token = outcome(lambda: page(world.b, world.A.tokens["DescribeImageList"]))
    assert with_a_token == outcome(lambda: page(world.a, world.A.tokens["DescribeImageList"]))
    assert with_a_token[0] == "answered" and with_a_token[1]["Data"]


def test_global_listings_are_the_same_for_both_accounts(world):
    for fn in (lambda c: c.describe_regions(models.DescribeRegionsRequest()),
               lambda c: c.describe_image_list(models.DescribeImageListRequest(image_type="System", max_results=100))):
        assert outcome(lambda: fn(world.b)) == outcome(lambda: fn(world.a))


# --- 4. B's listings without filters: nothing of A's, on any page ------------------------------

def every_page(fn):
    token, pages = None, []
    while True:
        body = fn(token).body
        pages.append(body.to_map())
        token = body.next_token
        if not token:
            return pages


def test_b_listings_never_show_a(world):
    b = world.b
    listings = {
        "DescribeTasks": lambda t: b.describe_tasks(models.DescribeTasksRequest(max_results=100, next_token=t)),
        "DescribeAndroidInstances": lambda t: b.describe_android_instances(
            models.DescribeAndroidInstancesRequest(max_results=1, next_token=t)),
        "DescribeAndroidInstanceGroups": lambda t: b.describe_android_instance_groups(
            models.DescribeAndroidInstanceGroupsRequest(max_results=1, next_token=t)),
        "DescribeBackupFiles": lambda t: b.describe_backup_files(
            models.DescribeBackupFilesRequest(max_results=1, next_token=t)),
        "DescribeApps": lambda t: b.describe_apps(models.DescribeAppsRequest(max_results=1, next_token=t)),
        "DescribeImageList": lambda t: b.describe_image_list(
            models.DescribeImageListRequest(image_type="System", max_results=1, next_token=t)),
        "stopped phones": lambda t: b.describe_android_instances(
            models.DescribeAndroidInstancesRequest(status="STOPPED", next_token=t)),
        "installed apps": lambda t: b.describe_apps(models.DescribeAppsRequest(installation_status="INSTALLED",
                                                                               next_token=t)),
    }
    for kind in TASK_TYPES:
        listings[f"{kind} tasks"] = lambda t, k=kind: b.describe_tasks(models.DescribeTasksRequest(
            task_type=k, max_results=100, next_token=t))
    secrets = world.A.secrets()
    for name, fn in listings.items():
        pages = every_page(fn)
        text = json.dumps(pages)
        assert not [s for s in secrets if s in text], (name, text)
    # B does see its own things there (the listings are not simply empty).
    assert world.mine.phone in json.dumps(every_page(listings["DescribeAndroidInstances"]))
    assert world.mine.backup in json.dumps(every_page(listings["DescribeBackupFiles"]))


# --- 5. Buckets and objects ------------------------------------------------------------------

def test_object_routes_of_a_are_not_found_for_b(world, tmp_path):
    server, A, FAKE = world.server, world.A, world.FAKE
    for name in ("object", "apk", "fetched", "shot", "backup_path"):
        got = http_outcome(*object_request(server, world.key_b, "GET", getattr(A, name)))
        fake = http_outcome(*object_request(server, world.key_b, "GET", getattr(FAKE, name)))
        assert got[:3] == ("refused", 404, "InvalidObject.NotFound"), (name, got)
        assert blank(json.dumps(got), A) == blank(json.dumps(fake), FAKE), (name, got, fake)
    # The same through `cloudphone cp`: the same words as for a bucket that does not exist.
    got = cp(server, A.object, tmp_path / "stolen", world.key_b)
    fake = cp(server, FAKE.object, tmp_path / "stolen", world.key_b)
    assert got.returncode == fake.returncode == 1 and not (tmp_path / "stolen").exists()
    assert "InvalidObject.NotFound" in got.stderr.decode()
    assert blank(got.stderr.decode(), A) == blank(fake.stderr.decode(), FAKE)
    # A still reads its object, unchanged.
    r = cp(server, A.object, tmp_path / "back", world.key_a)
    assert r.returncode == 0 and (tmp_path / "back").read_bytes() == b"A's secret file\n"


def test_a_links_open_their_own_object_only(world):
    """A signed link is the authorisation for its one object until it expires (README: links
    are signed and expire): whoever holds it reads that object, which is what handing it out
    is for. Nothing else can be made of it: re-pointed at another of A's objects, it is refused
    exactly as the same link re-pointed at a made-up bucket."""
    A, FAKE = world.A, world.FAKE
    assert requests.get(A.link, timeout=10).content == b"A's secret file\n"
    for link, target in (("link", "apk"), ("link", "object"), ("shot_link", "object"), ("shot_link", "backup_path")):
        got = requests.get(repoint(getattr(A, link), getattr(A, target)), timeout=10)
        fake = requests.get(repoint(getattr(FAKE, link), getattr(FAKE, target)), timeout=10)
        got, fake = http_outcome(got.status_code, got.content), http_outcome(fake.status_code, fake.content)
        assert got[:3] == ("refused", 403, "SignatureDoesNotMatch"), got
        assert blank(json.dumps(got), A) == blank(json.dumps(fake), FAKE)


def test_b_sources_from_a_links_and_routes_fail_alike(world):
    """SendFile by URL: A's link re-pointed at A's APK, and A's object route without any
    signature, fail B's child with the same code and message as the made-up ones."""
    b, server = world.b, world.server
    got = {}
    for label, values in (("A", world.A), ("made-up", world.FAKE)):
        urls = [repoint(values.link, values.apk), f"http://{server.endpoint}{object_route(values.object)}"]
        out = []
        for url in urls:
            r = b.send_file(models.SendFileRequest(android_instance_id_list=[world.mine.phone], upload_url=url,
                                                   source_file_path="/sdcard/Download/got.bin",
                                                   upload_type="DOWNLOAD_URL")).body
            wait_batch(b, r.request_id)
            (t,) = tasks_of(b, invoke_id=r.request_id, level=2)
            out.append((t.task_status, t.error_code, blank(t.error_msg or "", values)))
        got[label] = out
    assert got["A"] == got["made-up"]
    assert all(status == "Failed" for status, _, _ in got["A"]), got
    r = b.run_command(models.RunCommandRequest(instance_ids=[world.mine.phone],
                                               command_content="ls /sdcard/Download")).body
    wait_batch(b, r.invoke_id)
    (t,) = tasks_of(b, invoke_id=r.invoke_id, level=2)
    assert "got.bin" not in json.loads(t.result)["Output"]


# Writes into a bucket: B names A's bucket as the destination. Every account has its own bucket
# names, so B writes into a bucket of its own that has A's name, exactly as into a name nobody
# used, and A's bucket is untouched.
BUCKET_WRITES = [
    ("FetchFile", "into the bucket",
     lambda w, bucket: w.b.fetch_file(M.FetchFileRequest(
         android_instance_id_list=[w.mine.phone], source_file_path="/sdcard/b.txt", upload_type="OSS",
         upload_url=f"oss://{bucket}/out", upload_endpoint=ENDPOINT))),
    ("BackupFile", "into the bucket",
     lambda w, bucket: w.b.backup_file(M.BackupFileRequest(
         android_instance_id_list=[w.mine.phone], backup_all=True, backup_file_path=f"oss://{bucket}/backups",
         upload_type="OSS", upload_endpoint=ENDPOINT))),
    ("CreateScreenshot", "OssBucketName = the bucket",
     lambda w, bucket: w.b.create_screenshot(M.CreateScreenshotRequest(
         android_instance_id_list=[w.mine.phone], oss_bucket_name=bucket))),
    ("PUT /files/<bucket>/<key>", "signed by B (cloudphone cp)",
     lambda w, bucket: object_request(w.server, w.key_b, "PUT", f"oss://{bucket}/in/secret.txt",
                                      b"overwritten by B")),
]


def write_as_b(w, fn, bucket):
    """B's write into `bucket`, once its tasks are done: ("refused", status, Code, Message), or
    ("answered", what the answer holds: the body's fields, or the HTTP status) and the tasks'
    outcomes."""
    try:
        r = fn(w, bucket)
    except ClientException as e:
        return ("refused", e.status_code, e.code, e.data.get("Message"))
    if isinstance(r, tuple):
        got = http_outcome(*r)
        return got if got[0] == "refused" else ("answered", got[1])
    wait_batch(w.b, r.body.request_id)
    children = tasks_of(w.b, invoke_id=r.body.request_id, level=2)
    return ("answered", sorted(r.body.to_map()), sorted((t.task_status, t.error_code) for t in children))


@pytest.mark.parametrize("which", ["bucket", "default_bucket"])
@pytest.mark.parametrize("action,what,request_of", BUCKET_WRITES, ids=[r[0] for r in BUCKET_WRITES])
def test_b_writing_into_a_bucket_writes_into_its_own_as_into_a_name_nobody_used(
        world, a_before, which, action, what, request_of, tmp_path):
    a_bucket = getattr(world.A, which)
    got = write_as_b(world, request_of, a_bucket)
    fresh = "cloudphone-saved-bucket-isoz-" + uuid.uuid4().hex[:8]
    never_used = write_as_b(world, request_of, fresh)
    assert got[0] == "answered" and got == never_used, f"A's bucket: {got}\nunused:     {never_used}"
    assert "Failed" not in json.dumps(got), got
    assert a_state(world) == a_before
    r = cp(world.server, world.A.object, tmp_path / "back", world.key_a)
    assert r.returncode == 0 and (tmp_path / "back").read_bytes() == b"A's secret file\n"
    if action.startswith("PUT"):
        # B reads back what it wrote, from its own bucket of that name.
        r = cp(world.server, f"oss://{a_bucket}/in/secret.txt", tmp_path / "b", world.key_b)
        assert r.returncode == 0 and (tmp_path / "b").read_bytes() == b"overwritten by B"


# --- 6. The web console, signed in as B ----------------------------------------------------------

def console(world, key):
    s = requests.Session()
    r = s.post(f"http://{world.server.endpoint}/console/login",
               data={"access_key_id": key[0], "access_key_secret": key[1]}, allow_redirects=False, timeout=10)
    assert r.status_code in (302, 303) and s.cookies, (r.status_code, r.text[:200])
    return lambda path, params=None: s.get(f"http://{world.server.endpoint}/console{path}", params=params,
                                           allow_redirects=False, timeout=10)


def test_console_shows_b_nothing_of_a(world):
    get_b, get_a = console(world, world.key_b), console(world, world.key_a)
    A, FAKE = world.A, world.FAKE
    for kind in TASK_TYPES:
        for level in ("batch", "child"):
            task_id, fake_id = getattr(A.tasks[kind], level), getattr(FAKE.tasks[kind], level)
            assert get_a(f"/tasks/{task_id}").status_code == 200  # the control
            got, fake = get_b(f"/tasks/{task_id}"), get_b(f"/tasks/{fake_id}")
            assert got.status_code == fake.status_code == 404, (kind, level, got.status_code)
            assert "not found" in got.text.lower() and "InvalidTaskId.NotFound" in got.text
            assert blank(got.text, A, numbers=False) == blank(fake.text, FAKE, numbers=False), (kind, level)
    for filters in (lambda x: {"InvokeId": x.tasks["RunCommand"].invoke},
                    lambda x: {"TaskId": x.tasks["Screenshot"].batch},
                    lambda x: {"InstanceId": x.phone},
                    lambda x: {"InvokeId": x.tasks["UpdateGroupImage"].invoke, "Level": "2"},
                    lambda x: {"Param": x.command}):
        assert '<tr class="task"' in get_a("/tasks", filters(A)).text  # the control
        got, fake = get_b("/tasks", filters(A)), get_b("/tasks", filters(FAKE))
        assert got.status_code == fake.status_code == 200, filters(A)
        assert '<p class="muted" id="total">0 tasks</p>' in got.text and '<tr class="task"' not in got.text
        assert blank(got.text, A, numbers=False) == blank(fake.text, FAKE, numbers=False), filters(A)
    # A's NextToken in B's task center: refused like a forged one.
    got = get_b("/tasks", {"NextToken": A.tokens["DescribeTasks"]})
    fake = get_b("/tasks", {"NextToken": FAKE.tokens["DescribeTasks"]})
    assert got.status_code == fake.status_code == 400 and "InvalidParameter.NextToken" in got.text
    assert blank(got.text, A, numbers=False) == blank(fake.text, FAKE, numbers=False)
    # B's fleet page and task center show nothing of A's.
    for path in ("", "/tasks", "/tasks?TaskType=RunCommand", "/tasks?Level=2"):
        page = get_b(path)
        assert page.status_code == 200, path
        assert not [s for s in A.secrets() if s in page.text], path
    assert world.mine.phone in get_b("").text


# --- 7. CreateAndroidInstanceGroup with A's name, tag and ClientToken: B gets its own ----------

def test_b_creating_a_group_like_a_gets_its_own(world, a_before):
    A, b = world.A, world.b
    r = b.create_android_instance_group(models.CreateAndroidInstanceGroupRequest(
        biz_region_id="cn-hangzhou", image_id=IMAGE, instance_group_spec="acp.basic.small", number_of_instances=1,
        instance_group_name=A.group_name, client_token=A.client_token,
        tag=[models.CreateAndroidInstanceGroupRequestTag(key="owner", value=A.tag)])).body
    (group,), (phones,) = r.instance_group_ids, [i.instance_ids for i in r.instance_group_infos]
    assert group not in (A.group, A.group2) and not set(phones) & {A.phone, A.stopped, A.spare, A.phone2}
    wait_for(lambda: describe_instances(b, phones) and all(
        m.android_instance_status == "RUNNING" for m in describe_instances(b, phones).values()), what="B's group")
    found = b.describe_android_instance_groups(models.DescribeAndroidInstanceGroupsRequest(
        instance_group_name=A.group_name)).body.instance_group_model
    assert [g.instance_group_id for g in found] == [group]
    assert a_state(world) == a_before


def test_a_is_unchanged_at_the_end(world, a_before, tmp_path):
    assert a_state(world) == a_before
    for path in (world.A.object, world.A.apk):
        r = cp(world.server, path, tmp_path / "back", world.key_a)
        assert r.returncode == 0, r.stderr
    assert hashlib.md5((tmp_path / "back").read_bytes()).hexdigest() == world.A.md5


def test_every_action_is_tried():
    """The 29 actions: 21 in REFUSED, the 5 paginated listings in EMPTY (and with tokens), the
    two global ones in test_global_listings_are_the_same_for_both_accounts, and
    CreateAndroidInstanceGroup in test_b_creating_a_group_like_a_gets_its_own."""
    assert len(ACTIONS) == len(set(ACTIONS)) == 29
    tried = {r[0] for r in REFUSED} | {r[0] for r in EMPTY} | set(LISTINGS)
    assert len({r[0] for r in REFUSED}) == 21
    assert set(ACTIONS) - tried == {"DescribeRegions", "DescribeImageList", "CreateAndroidInstanceGroup"}
    assert tried <= set(ACTIONS)
