"""Every one of the vendor's sixteen TaskTypes, produced by its own operation on one phone, found
by DescribeTasks(TaskType=...) and reaching Finished."""

import json

from alibabacloud_eds_aic20230930 import models

from conftest import create_group, tasks_of, wait_batch
from test_apps import upload_app
from test_files import BUCKET, ENDPOINT, put

SIXTEEN = {"StartInstance", "StopInstance", "RebootInstance", "ResetInstance", "BackupFile", "RecoverFile",
           "SendFile", "FetchFile", "InstallApp", "UninstallApp", "StartApp", "StopApp", "RestartApp",
           "RunCommand", "Screenshot", "UpdateGroupImage"}


def test_all_sixteen_task_types(client, server, tmp_path):
    group, (phone,) = create_group(client, 1, name="sixteen")
    seen = {}

    def finished(kind, request_id):
        wait_batch(client, request_id)
        found = tasks_of(client, task_type=kind, invoke_id=request_id)
        assert found and {t.task_type for t in found} == {kind}, kind
        assert all(t.task_status == "Finished" for t in found), [(t.task_id, t.error_code, t.error_msg) for t in found]
        seen[kind] = found
        return [t for t in found if t.level == 2][0]

    ids = [phone]
    finished("StopInstance", client.stop_android_instance(models.StopAndroidInstanceRequest(android_instance_ids=ids)).body.request_id)
    finished("StartInstance", client.start_android_instance(models.StartAndroidInstanceRequest(android_instance_ids=ids)).body.request_id)
    finished("RebootInstance", client.reboot_android_instances_in_group(models.RebootAndroidInstancesInGroupRequest(android_instance_ids=ids)).body.request_id)
    finished("ResetInstance", client.reset_android_instances_in_group(models.ResetAndroidInstancesInGroupRequest(android_instance_ids=ids)).body.request_id)
    finished("RunCommand", client.run_command(models.RunCommandRequest(instance_ids=ids, command_content="id")).body.request_id)
    source = put(server, tmp_path, "sixteen.txt", b"sixteen")
    finished("SendFile", client.send_file(models.SendFileRequest(
        android_instance_id_list=ids, upload_url=source, source_file_path="/sdcard/", upload_type="OSS",
        upload_endpoint=ENDPOINT)).body.request_id)
    finished("FetchFile", client.fetch_file(models.FetchFileRequest(
        android_instance_id_list=ids, source_file_path="/sdcard/sixteen.txt", upload_type="OSS",
        upload_url=f"oss://{BUCKET}/sixteen", upload_endpoint=ENDPOINT)).body.request_id)
    backup = finished("BackupFile", client.backup_file(models.BackupFileRequest(
        android_instance_id_list=ids, backup_file_path=f"oss://{BUCKET}/backups", source_file_path_list=["/sdcard/sixteen.txt"],
        upload_type="OSS", upload_endpoint=ENDPOINT)).body.request_id)
    backup_id = json.loads(backup.result)["BackupFileId"]
    finished("RecoverFile", client.recovery_file(models.RecoveryFileRequest(
        android_instance_id_list=ids, backup_file_id=backup_id, upload_type="OSS", upload_endpoint=ENDPOINT)).body.request_id)
    app_id = upload_app(client, server, tmp_path, "com.example.sixteen")
    finished("InstallApp", client.install_app(models.InstallAppRequest(app_id_list=[str(app_id)], instance_id_list=ids)).body.request_id)
    for op, kind in (("start", "StartApp"), ("stop", "StopApp"), ("restart", "RestartApp")):
        finished(kind, client.operate_app(models.OperateAppRequest(app_id=app_id, instance_id_list=ids, operate_type=op)).body.request_id)
    finished("UninstallApp", client.uninstall_app(models.UninstallAppRequest(app_id_list=[str(app_id)], instance_id_list=ids)).body.request_id)
    finished("Screenshot", client.create_screenshot(models.CreateScreenshotRequest(android_instance_id_list=ids)).body.request_id)
    finished("UpdateGroupImage", client.update_instance_group_image(models.UpdateInstanceGroupImageRequest(
        image_id="imgc-simandroid120000", instance_group_ids=[group])).body.request_id)
    assert set(seen) == SIXTEEN
    # Every type is a filter of its own: the phone's tasks of that type are exactly the ones made.
    for kind, tasks in seen.items():
        mine = tasks_of(client, task_type=kind, instance_id=phone)
        assert {t.task_id for t in tasks if t.level == 2} <= {t.task_id for t in mine}
        assert {t.task_type for t in mine} == {kind}
