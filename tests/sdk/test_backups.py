"""BackupFile, RecoveryFile, DescribeBackupFiles and DeleteBackupFile through the official SDK:
a phone's files archived into the object store, restored byte for byte onto other phones and
after a reset, the BACKUPING / BACKUP_FAILED statuses, and the refusals."""

import hashlib
import json
import os
import subprocess
import time

import pytest
import requests
from alibabacloud_eds_aic20230930 import models

from conftest import BINARY, api_error, create_group, describe_instances, tasks_of, total_tasks, wait_batch, wait_for

BUCKET = "cloudphone-saved-bucket-backups"
ENDPOINT = "oss-cn-hangzhou.aliyuncs.com"
FILES = {
    "/sdcard/Download/notes.txt": b"first line\nsecond \xe4\xb8\xad\n",
    "/sdcard/Download/deep/er/blob.bin": None,  # random, filled in per run
    "/sdcard/DCIM/photo.jpg": None,
}


def cp(server, src, dst):
    key_id, secret = server.key
    env = dict(os.environ, CLOUDPHONE_ACCESS_KEY_ID=key_id, CLOUDPHONE_ACCESS_KEY_SECRET=secret)
    r = subprocess.run([str(BINARY), "cp", str(src), str(dst), "--endpoint", f"http://{server.endpoint}"],
                       env=env, capture_output=True)
    assert r.returncode == 0, r.stderr


def children(client, invoke_id):
    wait_batch(client, invoke_id, timeout=120)
    return {t.instance_id: t for t in tasks_of(client, invoke_id=invoke_id, level=2)}


def push(client, server, tmp_path, ids, path, data):
    local = tmp_path / hashlib.sha256(path.encode()).hexdigest()
    local.write_bytes(data)
    source = f"oss://{BUCKET}/in/{local.name}"
    cp(server, local, source)
    folder, name = path.rsplit("/", 1)
    r = client.send_file(models.SendFileRequest(
        android_instance_id_list=ids, upload_url=source, source_file_path=folder + "/", target_file_name=name,
        upload_type="OSS", upload_endpoint=ENDPOINT)).body
    for t in children(client, r.request_id).values():
        assert t.task_status == "Finished", (t.error_code, t.error_msg)


def fetch_digest(client, ids, path):
    """{instance: sha256 of `path` on it, or the child's ErrorCode}."""
    r = client.fetch_file(models.FetchFileRequest(
        android_instance_id_list=ids, source_file_path=path, upload_type="OSS",
        upload_url=f"oss://{BUCKET}/fetched/{time.time_ns()}", upload_endpoint=ENDPOINT)).body
    out = {}
    for instance, t in children(client, r.request_id).items():
        if t.task_status != "Finished":
            out[instance] = t.error_code
        else:
            out[instance] = hashlib.sha256(requests.get(json.loads(t.result)["Url"], timeout=30).content).hexdigest()
    return out


def backup(client, ids, paths=None, folder=f"oss://{BUCKET}/backups", **kw):
    return client.backup_file(models.BackupFileRequest(
        android_instance_id_list=ids, backup_file_path=folder, source_file_path_list=paths,
        upload_type="OSS", upload_endpoint=ENDPOINT, **kw)).body


def recover(client, ids, backup_id=None, path=None):
    return client.recovery_file(models.RecoveryFileRequest(
        android_instance_id_list=ids, backup_file_id=backup_id, backup_file_path=path,
        upload_type="OSS", upload_endpoint=ENDPOINT)).body


def describe(client, **kw):
    return client.describe_backup_files(models.DescribeBackupFilesRequest(**kw)).body


def status(client, instance):
    return describe_instances(client, [instance])[instance].android_instance_status


@pytest.fixture(scope="module")
def fleet(client):
    """Five phones: a source, three targets, a spare for failures."""
    group, ids = create_group(client, 5, name="backups")
    return group, ids


@pytest.fixture(scope="module")
def source(client, server, fleet, tmp_path_factory):
    """Files on the source phone and a finished backup of /sdcard/Download and /sdcard/DCIM."""
    group, ids = fleet
    tmp = tmp_path_factory.mktemp("backup-src")
    files = {p: (d if d is not None else os.urandom(200_000 + i)) for i, (p, d) in enumerate(FILES.items())}
    for path, data in files.items():
        push(client, server, tmp, ids[:1], path, data)
    r = backup(client, ids[:1], ["/sdcard/Download", "/sdcard/DCIM/"], backup_file_name="nightly-src",
               description="before the release", source_app_list=["com.example.notes"])
    (d,) = r.data
    assert d.android_instance_id == ids[0] and d.backup_file_id.startswith("bf-") and len(d.backup_file_id) == 19
    assert d.backup_file_name == "nightly-src" and r.count == 1
    # BACKUPING while it runs (the sim takes a little while per operation).
    (t,) = children(client, r.request_id).values()
    assert d.task_id == t.task_id
    return {"group": group, "ids": ids, "files": files, "backup": d, "task": t, "request_id": r.request_id}


def test_backup_finishes_and_is_found_by_its_task(client, source):
    t = source["task"]
    assert t.task_status == "Finished", (t.error_code, t.error_msg)
    found = {x.task_id: x for x in tasks_of(client, task_type="BackupFile", invoke_id=source["request_id"])}
    assert len(found) == 2 and found[t.task_id].task_status == "Finished"
    (batch,) = [x for x in found.values() if x.task_id != t.task_id]
    assert batch.task_status == "Finished" and t.parent_task_id == batch.task_id
    result = json.loads(t.result)
    assert result["BackupFileId"] == source["backup"].backup_file_id
    assert result["OssPath"] == f"oss://{BUCKET}/backups/{result['BackupFileId']}.tar"
    assert result["FileSize"] > sum(len(d) for d in source["files"].values())
    assert status(client, source["ids"][0]) == "RUNNING"


def test_describe_backup_files_fields_and_filters(client, source):
    group, ids, b = source["group"], source["ids"], source["backup"]
    r = describe(client, backup_file_id=b.backup_file_id)
    assert r.total_count == 1 and r.max_results == "10" and len(r.data) == 1
    d = r.data[0]
    result = json.loads(source["task"].result)
    assert (d.android_instance_id, d.backup_file_id, d.backup_file_name) == (ids[0], b.backup_file_id, "nightly-src")
    assert d.android_instance_name and d.instance_group_id == group and d.region_id == "cn-hangzhou"
    assert d.status == "AVAILABLE" and d.file_size == result["FileSize"]
    assert d.backup_file_path == result["OssPath"] and d.task_id == source["task"].task_id
    assert d.source_file_path_list == ["/sdcard/Download", "/sdcard/DCIM"]
    assert d.source_app_info_list == ["com.example.notes"]
    assert d.backup_all is False and d.description == "before the release"
    assert d.upload_type == "OSS" and d.channel == "CLOUDPHONE" and d.system_version == "Android 14"
    assert d.gmt_created and d.gmt_modified
    hit = lambda **kw: {x.backup_file_id for x in describe(client, max_results=100, **kw).data}  # noqa: E731
    assert b.backup_file_id in hit(android_instance_id=ids[0])
    assert b.backup_file_id not in hit(android_instance_id=ids[1])
    assert b.backup_file_id in hit(android_instance_name=d.android_instance_name[2:])
    assert b.backup_file_id in hit(backup_file_name="ghtly-s")
    assert b.backup_file_id not in hit(backup_file_name="nightly-other")
    assert b.backup_file_id in hit(description="the rel")
    assert b.backup_file_id in hit(instance_group_id=group)
    assert b.backup_file_id not in hit(instance_group_id="ag-nothing")
    assert b.backup_file_id in hit(status_list=["AVAILABLE"])
    assert b.backup_file_id not in hit(status_list=["RECOVERING"])
    assert b.backup_file_id in hit(backup_all=False) and b.backup_file_id not in hit(backup_all=True)
    assert b.backup_file_id in hit(start_time=d.gmt_created, end_time=d.gmt_created)
    assert b.backup_file_id not in hit(start_time="2099-01-01 00:00:00")
    assert b.backup_file_id not in hit(end_time="2000-01-01 00:00:00")
    for bad in (dict(start_time="yesterday"), dict(end_time="2024-01-01T00:00:00Z"), dict(status_list=["GONE"]),
                dict(max_results=0), dict(next_token="forged")):
        assert api_error(describe, client, **bad).status_code == 400, bad


def test_restore_onto_three_other_phones_is_byte_identical(client, source):
    ids, b, files = source["ids"], source["backup"], source["files"]
    targets = ids[1:4]
    for path in files:
        assert set(fetch_digest(client, targets, path).values()) == {"FetchFileFailed"}
    r = recover(client, targets, backup_id=b.backup_file_id)
    assert r.count == 3 and {d.android_instance_id for d in r.data} == set(targets)
    tasks = children(client, r.request_id)
    assert {d.task_id for d in r.data} == {t.task_id for t in tasks.values()}
    for t in tasks.values():
        assert t.task_status == "Finished", (t.error_code, t.error_msg)
    assert len(tasks_of(client, task_type="RecoverFile", invoke_id=r.request_id)) == 4
    for path, data in files.items():
        want = hashlib.sha256(data).hexdigest()
        assert fetch_digest(client, [ids[0], *targets], path) == {i: want for i in [ids[0], *targets]}, path
    for phone in targets:
        assert status(client, phone) == "RUNNING"


def test_reset_then_recover_brings_the_files_back(client, source):
    ids, b, files = source["ids"], source["backup"], source["files"]
    phone = ids[0]
    r = client.reset_android_instances_in_group(models.ResetAndroidInstancesInGroupRequest(android_instance_ids=[phone]))
    wait_batch(client, r.body.request_id)
    wait_for(lambda: status(client, phone) == "RUNNING", what="reset")
    path = "/sdcard/Download/notes.txt"
    assert fetch_digest(client, [phone], path) == {phone: "FetchFileFailed"}
    # By the archive's path this time.
    archive = json.loads(source["task"].result)["OssPath"]
    (t,) = children(client, recover(client, [phone], path=archive).request_id).values()
    assert t.task_status == "Finished", (t.error_code, t.error_msg)
    for p, data in files.items():
        assert fetch_digest(client, [phone], p) == {phone: hashlib.sha256(data).hexdigest()}
    assert status(client, phone) == "RUNNING" and b.backup_file_id


def test_backup_all_takes_the_whole_sdcard(client, server, fleet, tmp_path):
    _, ids = fleet
    spare, target = ids[4], ids[3]
    push(client, server, tmp_path, [spare], "/sdcard/Music/song.mp3", b"la la la")
    push(client, server, tmp_path, [spare], "/data/local/tmp/tool.sh", b"#!/bin/sh\n")
    push(client, server, tmp_path, [spare], "/sdcard/Movies/skip.mp4", b"big")
    r = backup(client, [spare], None, backup_all=True, exclude_source_file_path_list=["/sdcard/Movies"])
    (t,) = children(client, r.request_id).values()
    assert t.task_status == "Finished", (t.error_code, t.error_msg)
    (d,) = describe(client, backup_file_id=r.data[0].backup_file_id).data
    assert d.backup_all is True and d.backup_file_name == d.backup_file_id
    (t,) = children(client, recover(client, [target], backup_id=d.backup_file_id).request_id).values()
    assert t.task_status == "Finished", (t.error_code, t.error_msg)
    assert fetch_digest(client, [target], "/sdcard/Music/song.mp3") == {target: hashlib.sha256(b"la la la").hexdigest()}
    assert fetch_digest(client, [target], "/data/local/tmp/tool.sh") == {target: hashlib.sha256(b"#!/bin/sh\n").hexdigest()}
    assert fetch_digest(client, [target], "/sdcard/Movies/skip.mp4") == {target: "FetchFileFailed"}


def test_a_missing_path_fails_the_backup(client):
    _, (phone,) = create_group(client, 1, name="backup-fail")
    r = backup(client, [phone], ["/sdcard/Download/no-such-thing"])
    (t,) = children(client, r.request_id).values()
    assert (t.task_status, t.error_code) == ("Failed", "BackupFileFailed")
    assert "no-such-thing" in t.error_msg
    assert status(client, phone) == "BACKUP_FAILED"
    (d,) = describe(client, backup_file_id=r.data[0].backup_file_id).data
    assert d.status == "FAILED"
    e = api_error(recover, client, [phone], backup_id=d.backup_file_id)
    assert e.status_code == 409
    # A reboot brings it back.
    r = client.reboot_android_instances_in_group(models.RebootAndroidInstancesInGroupRequest(android_instance_ids=[phone]))
    wait_batch(client, r.body.request_id)
    wait_for(lambda: status(client, phone) == "RUNNING", what="reboot")


def test_recovery_of_a_stopped_phone_is_refused(client, source):
    _, (phone,) = create_group(client, 1, name="backup-stopped")
    client.stop_android_instance(models.StopAndroidInstanceRequest(android_instance_ids=[phone]))
    wait_for(lambda: status(client, phone) == "STOPPED", what="stopped")
    (t,) = children(client, recover(client, [phone], backup_id=source["backup"].backup_file_id).request_id).values()
    assert (t.task_status, t.error_code) == ("Failed", "IncorrectInstanceStatus")
    assert status(client, phone) == "STOPPED"


def test_unknown_foreign_and_bad_input(client, server, source):
    ids, b = source["ids"], source["backup"]
    before = total_tasks(client)
    e = api_error(recover, client, ids[1:2], backup_id="bf-0000000000000000")
    assert (e.status_code, e.code) == (404, "InvalidBackupFileId.NotFound")
    e = api_error(recover, client, ids[1:2], path=f"oss://{BUCKET}/backups/nothing.tar")
    assert (e.status_code, e.code) == (404, "InvalidBackupFilePath.NotFound")
    other = server.client(key=server.create_key("backups-other"))
    _, theirs = create_group(other, 1, name="theirs")
    e = api_error(recover, other, theirs, backup_id=b.backup_file_id)
    assert (e.status_code, e.code) == (404, "InvalidBackupFileId.NotFound")
    e = api_error(recover, other, theirs, path=json.loads(source["task"].result)["OssPath"])
    assert e.status_code == 404
    assert describe(other, backup_file_id=b.backup_file_id).total_count == 0
    e = api_error(other.delete_backup_file, models.DeleteBackupFileRequest(backup_file_id_list=[b.backup_file_id]))
    assert (e.status_code, e.code) == (404, "InvalidBackupFileId.NotFound")
    # The bucket name is the other account's too: its backup lands in its own bucket of that name.
    r = backup(other, theirs, ["/sdcard"], folder=f"oss://{BUCKET}/stolen")
    assert wait_batch(other, r.request_id).task_status == "Finished"
    (theirs_backup,) = r.data
    assert describe(other, backup_file_id=theirs_backup.backup_file_id).total_count == 1
    assert describe(client, backup_file_id=theirs_backup.backup_file_id).total_count == 0
    cases = [
        (dict(paths=["/sdcard/../../etc"]), "InvalidParameter.SourceFilePathList"),
        (dict(paths=["sdcard"]), "InvalidParameter.SourceFilePathList"),
        (dict(paths=["/sdcard"], exclude_source_file_path_list=["x/.."]), "InvalidParameter.ExcludeSourceFilePathList"),
        (dict(paths=["/sdcard"], folder="s3://bucket/x"), "InvalidParameter.BackupFilePath"),
        (dict(paths=["/sdcard"], folder=f"oss://{BUCKET}/../x"), "InvalidParameter.BackupFilePath"),
        (dict(paths=["/sdcard"], folder="oss://Bad_Bucket/x"), "InvalidParameter.BackupFilePath"),
        (dict(paths=None), "MissingParameter.SourceFilePathList"),
        (dict(paths=["/sdcard"], upload_type="FTP"), "InvalidParameter.UploadType"),
        (dict(paths=["/sdcard"], source_app_list=["not a package"]), "InvalidParameter.SourceAppList"),
    ]
    for kw, code in cases:
        paths = kw.pop("paths")
        if "upload_type" in kw:
            upload_type = kw.pop("upload_type")
            e = api_error(client.backup_file, models.BackupFileRequest(
                android_instance_id_list=ids[:1], backup_file_path=f"oss://{BUCKET}/b",
                source_file_path_list=paths, upload_type=upload_type))
        else:
            e = api_error(backup, client, ids[:1], paths, **kw)
        assert (e.status_code, e.code) == (400, code), (kw, e.code)
    e = api_error(client.backup_file, models.BackupFileRequest(android_instance_id_list=ids[:1], source_file_path_list=["/sdcard"]))
    assert e.code == "MissingParameter.BackupFilePath"
    e = api_error(backup, client, ["acp-0000000000000000"], ["/sdcard"])
    assert e.status_code == 404
    e = api_error(client.recovery_file, models.RecoveryFileRequest(android_instance_id_list=ids[1:2]))
    assert e.code == "MissingParameter.BackupFileId"
    e = api_error(recover, client, ids[1:2], path="oss://Bad_Bucket/x.tar")
    assert e.code == "InvalidParameter.BackupFilePath"
    e = api_error(client.delete_backup_file, models.DeleteBackupFileRequest())
    assert e.code == "MissingParameter.BackupFileIdList"
    assert total_tasks(client) == before


def test_a_hostile_archive_is_refused_and_writes_nothing(client, server, fleet, tmp_path):
    """A tar crafted to climb out of the phone is refused whole: RecoverFileFailed."""
    import io
    import tarfile
    _, ids = fleet
    phone = ids[3]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (("sdcard/Download/fine.txt", b"fine"), ("../../../../tmp/escaped.txt", b"evil")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("sdcard/link")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc"
        tar.addfile(link)
    local = tmp_path / "evil.tar"
    local.write_bytes(buf.getvalue())
    cp(server, local, f"oss://{BUCKET}/evil/evil.tar")
    (t,) = children(client, recover(client, [phone], path=f"oss://{BUCKET}/evil/evil.tar").request_id).values()
    assert (t.task_status, t.error_code) == ("Failed", "RecoverFileFailed")
    assert status(client, phone) == "RECOVER_FAILED"
    assert not os.path.exists("/tmp/escaped.txt") or open("/tmp/escaped.txt", "rb").read() != b"evil"
    # A reboot brings the phone back.
    r = client.reboot_android_instances_in_group(models.RebootAndroidInstancesInGroupRequest(android_instance_ids=[phone]))
    wait_batch(client, r.body.request_id)
    wait_for(lambda: status(client, phone) == "RUNNING", what="reboot")
    # The archive was refused whole: not even its harmless entry was written.
    assert fetch_digest(client, [phone], "/sdcard/Download/fine.txt") == {phone: "FetchFileFailed"}


def test_delete_backup_file(client, source):
    ids = source["ids"]
    r = backup(client, ids[1:3], ["/sdcard/Download"], backup_file_name="to-delete")
    for t in children(client, r.request_id).values():
        assert t.task_status == "Finished", (t.error_code, t.error_msg)
    doomed = [d.backup_file_id for d in r.data]
    assert {d.backup_file_id for d in describe(client, backup_file_name="to-delete", max_results=100).data} == set(doomed)
    # All or nothing: one unknown id deletes none.
    e = api_error(client.delete_backup_file, models.DeleteBackupFileRequest(backup_file_id_list=[doomed[0], "bf-0000000000000000"]))
    assert (e.status_code, e.code) == (404, "InvalidBackupFileId.NotFound")
    assert describe(client, backup_file_name="to-delete").total_count == 2
    client.delete_backup_file(models.DeleteBackupFileRequest(backup_file_id_list=doomed))
    assert describe(client, backup_file_name="to-delete").total_count == 0
    assert describe(client, backup_file_id=source["backup"].backup_file_id).total_count == 1
    e = api_error(recover, client, ids[1:2], backup_id=doomed[0])
    assert (e.status_code, e.code) == (404, "InvalidBackupFileId.NotFound")


def test_describe_pages(client, source):
    seen, token, total = [], None, None
    while True:
        r = describe(client, max_results=2, next_token=token)
        assert r.max_results == "2" and len(r.data) <= 2
        total = r.total_count
        seen += [d.backup_file_id for d in r.data]
        token = r.next_token
        if not token:
            break
    assert len(seen) == len(set(seen)) == total >= 3
