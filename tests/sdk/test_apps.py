"""Apps through the official SDK: CreateApp reads a real APK's manifest, DescribeApps and
DeleteApps, and InstallApp, UninstallApp and OperateApp (start, stop, restart) with coherent
effects on the simulated phones."""

import json
import subprocess

import requests
from alibabacloud_eds_aic20230930 import models

from conftest import BINARY, api_error, call, clear_faults, create_group, inject_fault, tasks_of, wait_batch
from test_files import cp, web  # noqa: F401 (fixture)
from test_screens_and_images import decode_png

BUCKET = "cloudphone-saved-bucket-apps"


def make_apk(tmp_path, package, version_code=7, version_name="1.7"):
    out = tmp_path / f"{package}.apk"
    subprocess.run([str(BINARY), "dev", "make-apk", "--package", package, "--version-code", str(version_code),
                    "--version-name", version_name, str(out)], check=True)
    return out


def upload_app(client, server, tmp_path, package, **kw):
    local = make_apk(tmp_path, package, **kw)
    path = f"oss://{BUCKET}/apks/{package}.apk"
    assert cp(server, local, path).returncode == 0
    return client.create_app(models.CreateAppRequest(oss_app_url=path, app_name=f"App {package}")).body.app_id


def shell(client, instance, command):
    r = client.run_command(models.RunCommandRequest(instance_ids=[instance], command_content=command)).body
    wait_batch(client, r.invoke_id)
    (t,) = tasks_of(client, invoke_id=r.invoke_id, level=2)
    return json.loads(t.result)["Output"]


def children(client, request_id):
    wait_batch(client, request_id)
    return tasks_of(client, invoke_id=request_id, level=2)


def test_install_start_stop_restart_uninstall(client, server, tmp_path):
    _, ids = create_group(client, 2, name="apps")
    app_id = upload_app(client, server, tmp_path, "com.example.notes", version_code=42, version_name="4.2")
    apps = client.describe_apps(models.DescribeAppsRequest(app_id_list=[str(app_id)])).body
    assert apps.total_count == "1"
    (a,) = apps.data
    assert (a.app_id, a.app_name, a.package_name, a.android_app_version) == (app_id, "App com.example.notes", "com.example.notes", "4.2")
    assert (a.status, a.installation_status) == ("NORMAL", "UNINSTALLED")
    assert len(a.md5) == 32

    r = client.install_app(models.InstallAppRequest(app_id_list=[str(app_id)], instance_id_list=ids)).body
    assert {(c.app_id, c.instance_id) for c in r.child_task_info} == {(str(app_id), i) for i in ids}
    kids = children(client, r.request_id)
    assert all(t.task_type == "InstallApp" and t.task_status == "Finished" for t in kids), [(t.error_code, t.error_msg) for t in kids]
    assert {t.task_id for t in tasks_of(client, task_type="InstallApp", invoke_id=r.request_id)} >= {c.child_task_id for c in r.child_task_info}
    for i in ids:
        assert "package:com.example.notes" in shell(client, i, "pm list packages -3").split()
        assert shell(client, i, "pm path com.example.notes").startswith("package:/data/app/")
    assert client.describe_apps(models.DescribeAppsRequest(app_id_list=[str(app_id)])).body.data[0].installation_status == "INSTALLED"
    assert client.describe_apps(models.DescribeAppsRequest(installation_status="INSTALLED")).body.total_count != "0"

    for op, kind in (("start", "StartApp"), ("stop", "StopApp"), ("restart", "RestartApp")):
        r = client.operate_app(models.OperateAppRequest(app_id=app_id, instance_id_list=ids[:1], operate_type=op)).body
        (t,) = children(client, r.request_id)
        assert (t.task_type, t.task_status) == (kind, "Finished"), t.error_msg
        assert tasks_of(client, task_ids=[r.task_id])[0].task_type == kind
    r = client.uninstall_app(models.UninstallAppRequest(app_id_list=[str(app_id)], instance_id_list=ids)).body
    kids = children(client, r.request_id)
    assert all(t.task_type == "UninstallApp" and t.task_status == "Finished" for t in kids)
    for i in ids:
        assert "package:com.example.notes" not in shell(client, i, "pm list packages -3").split()
    assert client.describe_apps(models.DescribeAppsRequest(app_id_list=[str(app_id)])).body.data[0].installation_status == "UNINSTALLED"
    # Starting an app that is not installed fails with a clear code; uninstalling it again too.
    r = client.operate_app(models.OperateAppRequest(app_id=app_id, instance_id_list=ids[:1], operate_type="start")).body
    (t,) = children(client, r.request_id)
    assert (t.task_status, t.error_code) == ("Failed", "OperateAppFailed")
    r = client.uninstall_app(models.UninstallAppRequest(app_id_list=[str(app_id)], instance_id_list=ids[:1])).body
    (t,) = children(client, r.request_id)
    assert (t.task_status, t.error_code) == ("Failed", "UninstallAppFailed")


def screen_below_status_bar(client, instance):
    """The pixels of the phone's screen under the status bar (which shows the time)."""
    r = client.create_screenshot(models.CreateScreenshotRequest(android_instance_id_list=[instance])).body
    (t,) = children(client, r.request_id)
    w, h, raw = decode_png(requests.get(json.loads(t.result)["Url"], timeout=10).content)
    return raw[(1 + 3 * w) * 40:]


def test_start_app_brings_it_to_the_front_and_stop_takes_it_away(client, server, tmp_path):
    _, ids = create_group(client, 1, name="front")
    app_id = upload_app(client, server, tmp_path, "com.example.front")
    children(client, client.install_app(models.InstallAppRequest(app_id_list=[str(app_id)], instance_id_list=ids)).body.request_id)
    home = screen_below_status_bar(client, ids[0])
    operate = lambda op: children(client, client.operate_app(models.OperateAppRequest(
        app_id=app_id, instance_id_list=ids, operate_type=op)).body.request_id)[0]
    assert operate("start").task_status == "Finished"
    in_front = screen_below_status_bar(client, ids[0])
    assert in_front != home
    assert operate("stop").task_status == "Finished"
    assert screen_below_status_bar(client, ids[0]) == home
    assert operate("restart").task_status == "Finished"
    assert screen_below_status_bar(client, ids[0]) == in_front


def test_install_by_group_and_app_catalogue(client, server, tmp_path):
    group, ids = create_group(client, 3, name="bygroup")
    a1 = upload_app(client, server, tmp_path, "com.example.one")
    a2 = upload_app(client, server, tmp_path, "com.example.two")
    r = client.install_app(models.InstallAppRequest(app_id_list=[str(a1), str(a2)], instance_group_id_list=[group])).body
    assert len(r.child_task_info) == 6
    kids = children(client, r.request_id)
    assert len(kids) == 6 and all(t.task_status == "Finished" for t in kids)
    for i in ids:
        pkgs = shell(client, i, "pm list packages -3").split()
        assert {"package:com.example.one", "package:com.example.two"} <= set(pkgs)
    # Paging through the catalogue.
    seen, token = [], None
    while True:
        page = client.describe_apps(models.DescribeAppsRequest(max_results=1, next_token=token)).body
        seen += [d.app_id for d in page.data]
        token = page.next_token
        if not token:
            break
    assert {a1, a2} <= set(seen) and len(seen) == len(set(seen)) == int(page.total_count)
    client.delete_apps(models.DeleteAppsRequest(app_id_list=[str(a2)]))
    e = api_error(client.install_app, models.InstallAppRequest(app_id_list=[str(a2)], instance_id_list=ids))
    assert (e.status_code, e.code) == (404, "InvalidAppIdList.NotFound")
    e = api_error(client.delete_apps, models.DeleteAppsRequest(app_id_list=[str(a2)]))
    assert e.code == "InvalidAppIdList.NotFound"


def test_app_refusals(client, server, tmp_path):
    _, ids = create_group(client, 1, name="appbad")
    not_apk = tmp_path / "notes.txt"
    not_apk.write_text("not an apk")
    assert cp(server, not_apk, f"oss://{BUCKET}/apks/notes.apk").returncode == 0
    e = api_error(client.create_app, models.CreateAppRequest(oss_app_url=f"oss://{BUCKET}/apks/notes.apk"))
    assert (e.status_code, e.code) == (400, "InvalidParameter.OssAppUrl")
    e = api_error(client.create_app, models.CreateAppRequest(oss_app_url=f"oss://{BUCKET}/apks/missing.apk"))
    assert (e.status_code, e.code) == (404, "InvalidOssAppUrl.NotFound")
    e = api_error(client.create_app, models.CreateAppRequest(app_name="x"))
    assert e.code == "MissingParameter.OssAppUrl"
    # Another account's app does not exist for this one.
    other = server.client(key=server.create_key("apps-other"))
    mine = upload_app(client, server, tmp_path, "com.example.mine")
    _, their_phones = create_group(other, 1, name="theirs")
    e = api_error(other.install_app, models.InstallAppRequest(app_id_list=[str(mine)], instance_id_list=their_phones))
    assert (e.status_code, e.code) == (404, "InvalidAppIdList.NotFound")
    e = api_error(other.operate_app, models.OperateAppRequest(app_id=mine, instance_id_list=their_phones, operate_type="start"))
    assert (e.status_code, e.code) == (404, "InvalidAppId.NotFound")
    assert other.describe_apps(models.DescribeAppsRequest(app_id_list=[str(mine)])).body.total_count == "0"
    e = api_error(client.operate_app, models.OperateAppRequest(app_id=mine, instance_id_list=ids, operate_type="launch"))
    assert e.code == "InvalidParameter.OperateType"
    e = api_error(client.install_app, models.InstallAppRequest(app_id_list=["abc"], instance_id_list=ids))
    assert e.code == "InvalidParameter.AppIdList"
    e = api_error(client.install_app, models.InstallAppRequest(app_id_list=[str(mine)]))
    assert e.code == "MissingParameter.InstanceIdList"
    # A stopped phone: the install fails its precondition and the phone stays STOPPED.
    client.stop_android_instance(models.StopAndroidInstanceRequest(android_instance_ids=ids))
    r = client.install_app(models.InstallAppRequest(app_id_list=[str(mine)], instance_id_list=ids)).body
    (t,) = children(client, r.request_id)
    assert (t.task_status, t.error_code) == ("Failed", "IncorrectInstanceStatus")


def test_custom_app_info_is_taken_as_given(client):
    info = {"ApkSize": "1.5", "DownloadUrl": "http://127.0.0.1:9/app.apk", "Md5": "a" * 32,
            "PackageName": "com.example.custom", "Version": "2.0", "VersionCode": "20"}
    app_id = client.create_app(models.CreateAppRequest(custom_app_info=models.CreateAppRequestCustomAppInfo(
        apk_size=info["ApkSize"], download_url=info["DownloadUrl"], md_5=info["Md5"], package_name=info["PackageName"],
        version=info["Version"], version_code=info["VersionCode"]))).body.app_id
    (a,) = client.describe_apps(models.DescribeAppsRequest(app_id_list=[str(app_id)])).body.data
    assert (a.package_name, a.android_app_version, a.md5, a.apk_size) == ("com.example.custom", "2.0", "a" * 32, "1.50")


def test_an_app_from_an_http_url(client, tmp_path, web):
    root, url = web
    apk = make_apk(tmp_path, "com.example.web", version_code=3, version_name="0.3")
    (root / "web.apk").write_bytes(apk.read_bytes())
    (root / "junk.apk").write_bytes(b"PK\x03\x04 not really")
    app_id = client.create_app(models.CreateAppRequest(oss_app_url=f"{url}/web.apk")).body.app_id
    (a,) = client.describe_apps(models.DescribeAppsRequest(app_id_list=[str(app_id)])).body.data
    assert (a.package_name, a.android_app_version, a.app_name) == ("com.example.web", "0.3", "com.example.web")
    _, ids = create_group(client, 1, name="webapp")
    (t,) = children(client, client.install_app(models.InstallAppRequest(
        app_id_list=[str(app_id)], instance_id_list=ids)).body.request_id)
    assert t.task_status == "Finished", t.error_msg
    assert "package:com.example.web" in shell(client, ids[0], "pm list packages -3").split()
    e = api_error(client.create_app, models.CreateAppRequest(oss_app_url=f"{url}/junk.apk"))
    assert e.code == "InvalidParameter.OssAppUrl"
    e = api_error(client.create_app, models.CreateAppRequest(oss_app_url=f"{url}/missing.apk"))
    assert (e.status_code, e.code) == (404, "InvalidOssAppUrl.NotFound")


def test_retry_of_an_install_reaches_only_the_phone_that_failed(client, server, tmp_path):
    _, ids = create_group(client, 3, name="retry-install")
    app_id = upload_app(client, server, tmp_path, "com.example.retried")
    inject_fault(client, ids[1], "InstallApp", error_code="InstallAppFailed", count=1)
    try:
        r = client.install_app(models.InstallAppRequest(app_id_list=[str(app_id)], instance_id_list=ids)).body
        b = wait_batch(client, r.request_id)
    finally:
        clear_faults(client)
    assert (b.task_status, b.failed_child_count) == ("PartFinished", 1)
    assert "package:com.example.retried" not in shell(client, ids[1], "pm list packages -3").split()
    retried = call(client, "RetryTasks", {"TaskId": b.task_id})
    assert [c["InstanceId"] for c in retried["ChildTasks"]] == [ids[1]]
    nb = wait_batch(client, retried["RequestId"])
    assert (nb.task_type, nb.task_status, nb.total_child_count) == ("InstallApp", "Finished", 1)
    for i in ids:
        assert "package:com.example.retried" in shell(client, i, "pm list packages -3").split()
    # The retry is the app's latest install, as a new call would be.
    (a,) = client.describe_apps(models.DescribeAppsRequest(app_id_list=[str(app_id)])).body.data
    assert a.installation_status == "INSTALLED"
