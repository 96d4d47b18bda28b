"""The object store's own routes: `cloudphone cp` up and down (a 60 MiB file, byte-identical, the
server's memory bounded), buckets that belong to their account, bad paths that never reach the
host, uploads held to their signed hash and size limit, and download links that must be signed
and unexpired. (Links produced by FetchFile are covered in test_files.py.)"""

import hashlib
import http.client
import os
import subprocess
import uuid
from pathlib import Path

import pytest
import requests

from conftest import API_VERSION, BINARY, Server, acs3_signature, error_code, new_nonce, pct, staging_dir, utc_now


def cp(server, src, dst, key=None, endpoint=None):
    key_id, secret = key or server.key
    env = dict(os.environ, CLOUDPHONE_ACCESS_KEY_ID=key_id, CLOUDPHONE_ACCESS_KEY_SECRET=secret,
               CLOUDPHONE_ENDPOINT=endpoint or f"http://{server.endpoint}")
    return subprocess.run([str(BINARY), "cp", str(src), str(dst)], env=env, capture_output=True, timeout=120)


def ok(r):
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout.decode()


def refused(r, code):
    assert r.returncode != 0, r.stdout.decode()
    assert code in r.stderr.decode(), r.stderr.decode()


def bucket():
    return "objects-" + uuid.uuid4().hex[:12]


def vm_hwm_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def route(b, key):
    return f"/files/{pct(b)}/" + "/".join(pct(s) for s in key.split("/"))


def object_request(server, method, target, body=b"", signed_body=None, signed_path=None, key=None,
                   action=None):
    """A request to an object route, signed with ACS3 over `signed_path` (default: `target`) and the
    hash of `signed_body` (default: `body`); sent with `target` byte for byte."""
    key_id, secret = key or server.key
    signed_body = body if signed_body is None else signed_body
    h = {
        "host": server.endpoint,
        "x-acs-action": action or ("PutObject" if method == "PUT" else "GetObject"),
        "x-acs-version": API_VERSION,
        "x-acs-date": utc_now(),
        "x-acs-signature-nonce": new_nonce(),
        "x-acs-content-sha256": hashlib.sha256(signed_body).hexdigest(),
    }
    signed = sorted(h)
    sig = acs3_signature(method, signed_path or target, [], h, signed, signed_body, secret)
    h["authorization"] = f"ACS3-HMAC-SHA256 Credential={key_id},SignedHeaders={';'.join(signed)},Signature={sig}"
    return raw(server, method, target, h, body)


class Raw:
    def __init__(self, status, headers, body):
        self.status_code, self.headers, self.content = status, headers, body

    def json(self):
        import json
        return json.loads(self.content)


def raw(server, method, target, headers=None, body=b""):
    """`target` sent as is (`requests` would normalise `..` away)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        for k, v in {"host": server.endpoint, **(headers or {})}.items():
            conn.putheader(k, v)
        conn.putheader("content-length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        return Raw(resp.status, dict(resp.getheaders()), resp.read())
    finally:
        conn.close()


@pytest.fixture(scope="module")
def other_key(server):
    return server.create_key("objects-other-" + uuid.uuid4().hex[:6])


def test_a_large_file_round_trips_in_bounded_memory(workdir, tmp_path):
    server = Server(workdir / "objects-large").start()
    try:
        big = tmp_path / "big.bin"
        digest = hashlib.sha256()
        with big.open("wb") as f:
            for _ in range(60):
                chunk = os.urandom(1 << 20)
                digest.update(chunk)
                f.write(chunk)
        baseline = vm_hwm_kib(server.proc.pid)
        b = bucket()
        out = ok(cp(server, big, f"oss://{b}/dir/big file.bin"))
        assert f"oss://{b}/dir/big file.bin" in out and str(60 << 20) in out
        back = tmp_path / "back.bin"
        ok(cp(server, f"oss://{b}/dir/big file.bin", back))
        got = hashlib.sha256()
        with back.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                got.update(chunk)
        assert back.stat().st_size == 60 << 20
        assert got.hexdigest() == digest.hexdigest()
        grown_mib = (vm_hwm_kib(server.proc.pid) - baseline) / 1024
        assert grown_mib < 40, f"the server's peak memory grew by {grown_mib:.0f} MiB for a 60 MiB file"
        # Nothing is left in the staging directory.
        assert list(staging_dir(server).iterdir()) == []
    finally:
        server.stop()


def test_folders_directories_and_overwrites(server, tmp_path):
    b = bucket()
    src = tmp_path / "report.txt"
    src.write_bytes(b"first")
    ok(cp(server, src, f"oss://{b}/reports/"))
    (tmp_path / "down").mkdir()
    ok(cp(server, f"oss://{b}/reports/report.txt", tmp_path / "down"))
    assert (tmp_path / "down" / "report.txt").read_bytes() == b"first"
    src.write_bytes(b"second, longer")
    ok(cp(server, src, f"oss://{b}/reports/report.txt"))
    ok(cp(server, f"oss://{b}/reports/report.txt", tmp_path / "down" / "again.txt"))
    assert (tmp_path / "down" / "again.txt").read_bytes() == b"second, longer"
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    ok(cp(server, empty, f"oss://{b}/empty"))
    ok(cp(server, f"oss://{b}/empty", tmp_path / "empty.back"))
    assert (tmp_path / "empty.back").read_bytes() == b""


def test_missing_objects_are_clear_errors(server, tmp_path):
    b = bucket()
    src = tmp_path / "x.txt"
    src.write_bytes(b"x")
    ok(cp(server, src, f"oss://{b}/x.txt"))
    refused(cp(server, f"oss://{b}/missing.txt", tmp_path / "m"), "InvalidObject.NotFound")
    refused(cp(server, f"oss://{bucket()}/x.txt", tmp_path / "m"), "InvalidObject.NotFound")
    assert not (tmp_path / "m").exists()
    refused(cp(server, tmp_path / "no-such-file", f"oss://{b}/y"), "no-such-file")


def test_every_account_has_its_own_buckets(server, other_key, tmp_path):
    b = bucket()
    src = tmp_path / "mine.txt"
    src.write_bytes(b"mine")
    ok(cp(server, src, f"oss://{b}/mine.txt"))
    theirs = tmp_path / "theirs.txt"
    theirs.write_bytes(b"theirs")
    # For the other account, the bucket name is its own and empty: nothing of the owner's is seen.
    refused(cp(server, f"oss://{b}/mine.txt", tmp_path / "stolen", key=other_key), "InvalidObject.NotFound")
    assert not (tmp_path / "stolen").exists()
    r = object_request(server, "GET", route(b, "mine.txt"), key=other_key)
    assert error_code(r) == (404, "InvalidObject.NotFound")
    # Answered as for a name nobody uses.
    missing = cp(server, f"oss://{bucket()}/mine.txt", tmp_path / "m", key=other_key)
    refused(missing, "InvalidObject.NotFound")
    # Writing the same path makes the other account an object of its own...
    ok(cp(server, theirs, f"oss://{b}/mine.txt", key=other_key))
    ok(cp(server, theirs, f"oss://{b}/new.txt", key=other_key))
    ok(cp(server, f"oss://{b}/mine.txt", tmp_path / "t", key=other_key))
    assert (tmp_path / "t").read_bytes() == b"theirs"
    # ... and the owner's is intact, and the other's new object is not the owner's to see.
    ok(cp(server, f"oss://{b}/mine.txt", tmp_path / "back"))
    assert (tmp_path / "back").read_bytes() == b"mine"
    refused(cp(server, f"oss://{b}/new.txt", tmp_path / "n"), "InvalidObject.NotFound")


@pytest.mark.parametrize("path", [
    "oss://BUCKET/x", "oss://b/x", "oss://-bucket/x", "oss://bucket_x/x", "oss://objects-ok/../x",
    "oss://objects-ok/a//b", "oss://objects-ok/./x", "oss://objects-ok/a\\b", "s3://objects-ok/x",
])
def test_bad_paths_are_refused_by_the_client(server, tmp_path, path):
    src = tmp_path / "f"
    src.write_bytes(b"f")
    r = cp(server, src, path)
    assert r.returncode != 0
    assert b"oss" in r.stderr.lower() or b"path" in r.stderr.lower(), r.stderr


@pytest.mark.parametrize("target", [
    "/files/objects-ok/../../../escape",
    "/files/objects-ok/%2E%2E/%2E%2E/escape",
    "/files/objects-ok/a/./b",
    "/files/objects-ok/a//b",
    "/files/objects-ok/a%00b",
    "/files/objects-ok/a%5Cb",
    "/files/objects-ok/%FF%FE",
    "/files/OBJECTS/x",
    "/files/ob/x",
    "/files/objects-ok/dir/",
])
def test_bad_paths_are_refused_by_the_server(server, target):
    # Signed over the very target sent, so that only the path can be wrong.
    for method in ("PUT", "GET"):
        r = object_request(server, method, target, body=b"escape" if method == "PUT" else b"")
        status, code = error_code(r)
        assert 400 <= status < 500, (method, target, status, code)
        assert code in ("InvalidParameter.Path", "InvalidAction.NotFound"), code
    # Nothing landed outside the object store, nor in it.
    data = server.data_dir
    for p in (data / "escape", data.parent / "escape", data / "objects" / "escape",
              data / "objects" / "data" / "escape"):
        assert not p.exists(), p


def test_uploads_are_held_to_their_signature(server, tmp_path):
    b = bucket()
    target = route(b, "signed.bin")
    # The body differs from the hash that was signed.
    r = object_request(server, "PUT", target, body=b"tampered", signed_body=b"original")
    assert error_code(r) == (403, "SignatureDoesNotMatch")
    # Signed for another path.
    r = object_request(server, "PUT", target, body=b"x", signed_path=route(b, "other.bin"))
    assert error_code(r) == (403, "SignatureDoesNotMatch")
    # Signed as a download.
    r = object_request(server, "PUT", target, body=b"x", action="GetObject")
    assert error_code(r) == (400, "InvalidParameter.x-acs-action")
    # None of these stored anything (the bucket was not even created).
    refused(cp(server, f"oss://{b}/signed.bin", tmp_path / "s"), "InvalidObject.NotFound")
    # Unsigned and wrongly keyed requests.
    r = raw(server, "PUT", target, {"content-type": "application/octet-stream"}, b"x")
    assert error_code(r)[0] in (400, 403)
    r = object_request(server, "PUT", target, body=b"x", key=("nobody", "nothing"))
    assert error_code(r) == (403, "SignatureDoesNotMatch")
    # A proper one works, and its answer carries size and MD5.
    r = object_request(server, "PUT", target, body=b"original")
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["Size"] == 8 and body["Md5"] == hashlib.md5(b"original").hexdigest()
    assert body["Path"] == f"oss://{b}/signed.bin" and body["RequestId"]
    r = object_request(server, "GET", target)
    assert r.status_code == 200 and r.content == b"original"
    # Other methods are not routes.
    r = object_request(server, "DELETE", target, action="DeleteObject")
    assert error_code(r)[0] == 404


def test_upload_size_is_bounded(workdir, tmp_path):
    server = Server(workdir / "objects-limit", extra_args=["--max-upload-bytes", "100000"]).start()
    try:
        b = bucket()
        small, big = tmp_path / "small", tmp_path / "big"
        small.write_bytes(b"s" * 100_000)
        big.write_bytes(b"b" * 100_001)
        ok(cp(server, small, f"oss://{b}/small"))
        refused(cp(server, big, f"oss://{b}/big"), "RequestEntityTooLarge")
        refused(cp(server, f"oss://{b}/big", tmp_path / "big.back"), "InvalidObject.NotFound")
        assert list(staging_dir(server).iterdir()) == []
    finally:
        server.stop()


def test_links_must_be_signed_and_unexpired(server, tmp_path):
    b = bucket()
    src = tmp_path / "l.txt"
    src.write_bytes(b"linked")
    ok(cp(server, src, f"oss://{b}/l.txt"))
    base = f"http://{server.endpoint}/files/{b}/l.txt"
    forged = "0" * 64
    for query in ("", "?Expires=9999999999", "?Signature=" + forged,
                  "?Expires=9999999999&Signature=" + forged,
                  "?Account=root&Expires=9999999999&Signature=" + forged,
                  "?Account=root&Expires=1&Signature=" + forged,
                  "?Account=root&Expires=soon&Signature=" + forged,
                  "?Account=root&Expires=9999999999&Signature=not-hex"):
        r = requests.get(base + query, timeout=10)
        status, code = error_code(r)
        assert 400 <= status < 500, (query, status, code)
        assert r.content != b"linked"
    r = requests.get(base + "?Account=root&Expires=9999999999&Signature=" + forged, timeout=10)
    assert error_code(r) == (403, "SignatureDoesNotMatch")


def test_endpoint_must_be_plain_http(server, tmp_path):
    src = tmp_path / "f"
    src.write_bytes(b"f")
    r = cp(server, src, f"oss://{bucket()}/f", endpoint=f"https://{server.endpoint}")
    assert r.returncode != 0 and b"http://" in r.stderr
    r = cp(server, src, f"oss://{bucket()}/f", key=(server.key[0], "wrong-secret"))
    refused(r, "SignatureDoesNotMatch")
