"""SendFile and FetchFile through the official SDK: sources in the object store and at HTTP URLs,
the bytes seen by the phone's shell, byte-identical round trips of a large file in bounded
memory, MD5 checks, signed links, account isolation, and paths that must never reach the host."""

import functools
import hashlib
import http.server
import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests
from alibabacloud_eds_aic20230930 import models

from conftest import BINARY, Server, api_error, create_group, tasks_of, total_tasks, wait_batch

BUCKET = "cloudphone-saved-bucket-files"
ENDPOINT = "oss-cn-hangzhou.aliyuncs.com"


def cp(server, src, dst, key=None):
    key_id, secret = key or server.key
    env = dict(os.environ, CLOUDPHONE_ACCESS_KEY_ID=key_id, CLOUDPHONE_ACCESS_KEY_SECRET=secret)
    return subprocess.run([str(BINARY), "cp", str(src), str(dst), "--endpoint", f"http://{server.endpoint}"],
                          env=env, capture_output=True)


def put(server, tmp_path, name, data, key=None):
    local = tmp_path / name
    local.write_bytes(data)
    path = f"oss://{BUCKET}/in/{name}"
    r = cp(server, local, path, key=key)
    assert r.returncode == 0, r.stderr
    return path


def send(client, ids, source, dest, upload_type="OSS", **kw):
    return client.send_file(models.SendFileRequest(
        android_instance_id_list=ids, upload_url=source, source_file_path=dest, upload_type=upload_type,
        upload_endpoint=ENDPOINT, **kw)).body


def fetch(client, ids, path, folder=f"oss://{BUCKET}/out"):
    return client.fetch_file(models.FetchFileRequest(
        android_instance_id_list=ids, source_file_path=path, upload_type="OSS", upload_url=folder,
        upload_endpoint=ENDPOINT)).body


def children(client, invoke_id):
    wait_batch(client, invoke_id, timeout=120)
    return {t.instance_id: t for t in tasks_of(client, invoke_id=invoke_id, level=2)}


def shell(client, instance, command):
    r = client.run_command(models.RunCommandRequest(instance_ids=[instance], command_content=command)).body
    (t,) = children(client, r.invoke_id).values()
    return json.loads(t.result)


@pytest.fixture(scope="module")
def phones(client):
    return create_group(client, 2, name="files")[1]


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    """An HTTP server of the test's own, serving a folder on loopback."""
    root = tmp_path_factory.mktemp("web")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_send_from_oss_cat_it_and_fetch_it_back(client, server, phones, tmp_path):
    data = b"line one\nline two \xe4\xb8\xad\n"
    source = put(server, tmp_path, "hello.txt", data)
    r = send(client, phones, source, "/sdcard/Download/")
    assert len(r.data) == 2 and {d.android_instance_id for d in r.data} == set(phones)
    for t in children(client, r.request_id).values():
        assert t.task_status == "Finished", (t.error_code, t.error_msg)
    for phone in phones:
        out = shell(client, phone, "cat /sdcard/Download/hello.txt")
        assert out["Output"].encode() == data and out["ExitCode"] == 0
    f = fetch(client, phones, "/sdcard/Download/hello.txt")
    for phone, t in children(client, f.request_id).items():
        assert t.task_status == "Finished", (t.error_code, t.error_msg)
        result = json.loads(t.result)
        assert result["OssPath"] == f"oss://{BUCKET}/out/{phone}/hello.txt"
        assert requests.get(result["Url"], timeout=10).content == data
    # And through the CLI, with the account's key.
    back = tmp_path / "back.txt"
    assert cp(server, f"oss://{BUCKET}/out/{phones[0]}/hello.txt", back).returncode == 0
    assert back.read_bytes() == data


def test_target_file_name_and_http_sources(client, phones, web):
    root, url = web
    (root / "app.cfg").write_bytes(b"k=v\n")
    r = send(client, phones[:1], f"{url}/app.cfg", "/data/local/tmp/conf/x.cfg", upload_type="DOWNLOAD_URL")
    (t,) = children(client, r.request_id).values()
    assert t.task_status == "Finished", t.error_msg
    assert shell(client, phones[0], "cat /data/local/tmp/conf/x.cfg")["Output"] == "k=v\n"
    r = send(client, phones[:1], f"{url}/app.cfg", "/sdcard/", upload_type="OSS_BRIDGED", target_file_name="renamed.cfg")
    (t,) = children(client, r.request_id).values()
    assert t.task_status == "Finished", t.error_msg
    assert shell(client, phones[0], "ls /sdcard")["Output"].split().count("renamed.cfg") == 1
    # A URL that is not there fails the child with a clear code.
    r = send(client, phones[:1], f"{url}/missing.bin", "/sdcard/m.bin", upload_type="DOWNLOAD_URL")
    (t,) = children(client, r.request_id).values()
    assert (t.task_status, t.error_code) == ("Failed", "SourceFileNotFound")


def test_file_md5_is_checked(client, server, phones, tmp_path):
    data = os.urandom(4096)
    source = put(server, tmp_path, "md5.bin", data)
    r = send(client, phones[:1], source, "/sdcard/", file_md_5="0" * 32)
    (t,) = children(client, r.request_id).values()
    assert (t.task_status, t.error_code) == ("Failed", "FileMd5Mismatch")
    assert "md5.bin" not in shell(client, phones[0], "ls /sdcard")["Output"].split()
    r = send(client, phones[:1], source, "/sdcard/", file_md_5=hashlib.md5(data).hexdigest().upper())
    (t,) = children(client, r.request_id).values()
    assert t.task_status == "Finished", t.error_msg


def test_long_output_is_linked_in_full(client, server, phones, tmp_path):
    data = ("".join(f"{i:06d} the quick brown fox\n" for i in range(5000))).encode()  # ~130 KB
    source = put(server, tmp_path, "long.txt", data)
    (t,) = children(client, send(client, phones[:1], source, "/sdcard/").request_id).values()
    assert t.task_status == "Finished"
    out = shell(client, phones[0], "cat /sdcard/long.txt")
    assert out["Truncated"] is True and out["ExitCode"] == 0
    assert 0 < len(out["Output"].encode()) <= 24 * 1024
    assert data.startswith(out["Output"].encode())
    assert requests.get(out["OutputUrl"], timeout=10).content == data


def test_missing_sources_and_bad_paths_are_refused(client, server, phones, tmp_path):
    source = put(server, tmp_path, "ok.txt", b"ok")
    before = total_tasks(client)
    cases = [
        (dict(source=f"oss://{BUCKET}/in/nothing-here.txt", dest="/sdcard/"), 404, "InvalidUploadUrl.NotFound"),
        (dict(source="oss://no-such-bucket-anywhere/x.txt", dest="/sdcard/"), 404, "InvalidUploadUrl.NotFound"),
        (dict(source="oss://Bad_Bucket/x.txt", dest="/sdcard/"), 400, "InvalidParameter.UploadUrl"),
        (dict(source=f"oss://{BUCKET}/../etc/passwd", dest="/sdcard/"), 400, "InvalidParameter.UploadUrl"),
        (dict(source=source, dest="/sdcard/../../etc/"), 400, "InvalidParameter.SourceFilePath"),
        (dict(source=source, dest="sdcard/"), 400, "InvalidParameter.SourceFilePath"),
        (dict(source=source, dest="/sdcard/a\0b/"), 400, "InvalidParameter.SourceFilePath"),
        (dict(source=source, dest="/sdcard/", target_file_name="../x"), 400, "InvalidParameter.TargetFileName"),
        (dict(source=source, dest="/sdcard/", upload_type="FTP"), 400, "InvalidParameter.UploadType"),
        (dict(source="file:///etc/passwd", dest="/sdcard/x", upload_type="DOWNLOAD_URL"), 400, "InvalidParameter.UploadUrl"),
        (dict(source=source, dest="/sdcard/", file_md_5="abc"), 400, "InvalidParameter.FileMd5"),
    ]
    for kw, status, code in cases:
        upload_type = kw.pop("upload_type", "OSS")
        e = api_error(send, client, phones, kw.pop("source"), kw.pop("dest"), upload_type=upload_type, **kw)
        assert (e.status_code, e.code) == (status, code), (kw, e.code)
    e = api_error(client.send_file, models.SendFileRequest(
        android_instance_id_list=phones, upload_url=source, source_file_path="/sdcard/", upload_type="OSS"))
    assert e.code == "MissingParameter.UploadEndpoint"
    for path, code in (("/sdcard/../x", "InvalidParameter.SourceFilePath"), ("/sdcard/", "InvalidParameter.SourceFilePath")):
        e = api_error(fetch, client, phones, path)
        assert e.code == code
    e = api_error(fetch, client, phones, "/sdcard/x", folder="oss://Bad/x")
    assert e.code == "InvalidParameter.UploadUrl"
    e = api_error(client.fetch_file, models.FetchFileRequest(
        android_instance_id_list=phones, source_file_path="/sdcard/x", upload_type="DOWNLOAD_URL",
        upload_url=f"oss://{BUCKET}/out", upload_endpoint=ENDPOINT))
    assert e.code == "InvalidParameter.UploadType"
    assert total_tasks(client) == before


def test_host_files_are_out_of_reach(client, phones):
    """`/etc/passwd` exists on the host; on the phone it is just a path that is not there."""
    assert Path("/etc/passwd").exists()
    f = fetch(client, phones[:1], "/etc/passwd")
    (t,) = children(client, f.request_id).values()
    assert (t.task_status, t.error_code) == ("Failed", "FetchFileFailed")
    out = shell(client, phones[0], "cat /etc/passwd; cat ../../../../etc/passwd")
    assert out["ExitCode"] == 1 and "root:" not in out["Output"]


def test_links_and_buckets_belong_to_their_account(client, server, phones, tmp_path):
    source = put(server, tmp_path, "mine.txt", b"mine")
    other = server.client(key=server.create_key("files-other"))
    _, theirs = create_group(other, 1, name="theirs")
    e = api_error(send, other, theirs, source, "/sdcard/")
    assert (e.status_code, e.code) == (404, "InvalidUploadUrl.NotFound")
    # The bucket name is the other account's too: its fetch lands in its own bucket of that name.
    out = shell(other, theirs[0], "touch /sdcard/theirs.txt")
    assert out["ExitCode"] == 0, out
    (t,) = children(other, fetch(other, theirs, "/sdcard/theirs.txt", folder=f"oss://{BUCKET}/in").request_id).values()
    assert (t.task_status, t.error_code) == ("Finished", None), t.to_map()
    assert json.loads(t.result)["OssPath"] == f"oss://{BUCKET}/in/{theirs[0]}/theirs.txt"
    got = requests.get(json.loads(t.result)["Url"], timeout=10)
    assert (got.status_code, got.content) == (200, b"")
    r = cp(server, f"oss://{BUCKET}/in/mine.txt", tmp_path / "stolen.txt", key=server.create_key("files-other2"))
    assert r.returncode != 0 and not (tmp_path / "stolen.txt").exists()
    r = cp(server, f"oss://{BUCKET}/in/{theirs[0]}/theirs.txt", tmp_path / "not-mine")
    assert r.returncode != 0 and not (tmp_path / "not-mine").exists()
    r = cp(server, f"oss://{BUCKET}/in/mine.txt", tmp_path / "back")
    assert r.returncode == 0 and (tmp_path / "back").read_bytes() == b"mine"


def test_altered_and_expired_links_are_refused(workdir, tmp_path):
    server = Server(workdir / "links", extra_args=["--link-ttl-secs", "2"]).start()
    try:
        client = server.client()
        _, ids = create_group(client, 1, name="links")
        put(server, tmp_path, "l.txt", b"linked")
        (t,) = children(client, send(client, ids, f"oss://{BUCKET}/in/l.txt", "/sdcard/").request_id).values()
        (t,) = children(client, fetch(client, ids, "/sdcard/l.txt").request_id).values()
        url = json.loads(t.result)["Url"]
        assert requests.get(url, timeout=10).content == b"linked"
        sig = url.rsplit("Signature=", 1)[1][:64]
        flipped = ("0" if sig[0] != "0" else "1") + sig[1:]
        assert "Account=" in url
        for bad in (url.replace(sig, flipped), url.replace("/l.txt", "/m.txt"),
                    url.replace("Expires=", "Expires=9"), url.replace("Account=", "Account=x")):
            r = requests.get(bad, timeout=10)
            assert 400 <= r.status_code < 500 and r.json()["Code"], bad
            assert r.content != b"linked"
        time.sleep(3)
        r = requests.get(url, timeout=10)
        assert r.status_code == 403 and r.json()["Code"]
    finally:
        server.stop()


def vm_hwm_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_a_large_file_round_trips_in_bounded_memory(workdir, tmp_path):
    server = Server(workdir / "large").start()
    try:
        client = server.client()
        _, ids = create_group(client, 1, name="large")
        big = tmp_path / "big.bin"
        digest = hashlib.sha256()
        with big.open("wb") as f:
            for _ in range(60):
                chunk = os.urandom(1 << 20)
                digest.update(chunk)
                f.write(chunk)
        baseline = vm_hwm_kib(server.proc.pid)
        assert cp(server, big, f"oss://{BUCKET}/in/big.bin").returncode == 0
        (t,) = children(client, send(client, ids, f"oss://{BUCKET}/in/big.bin", "/sdcard/").request_id).values()
        assert t.task_status == "Finished", t.error_msg
        (t,) = children(client, fetch(client, ids, "/sdcard/big.bin").request_id).values()
        assert t.task_status == "Finished", t.error_msg
        got = hashlib.sha256()
        with requests.get(json.loads(t.result)["Url"], stream=True, timeout=60) as r:
            for chunk in r.iter_content(1 << 16):
                got.update(chunk)
        assert got.hexdigest() == digest.hexdigest()
        grown_mib = (vm_hwm_kib(server.proc.pid) - baseline) / 1024
        assert grown_mib < 30, f"the server's peak memory grew by {grown_mib:.0f} MiB for a 60 MiB file"
    finally:
        server.stop()
