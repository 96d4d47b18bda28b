"""Fixtures for the SDK acceptance tests: a real `cloudphone serve` on a free port, with its own
data dir, driven through the official Alibaba Cloud SDK exactly as a user would.

With `CLOUDPHONE_TEST_STORE=postgres` every server runs on PostgreSQL instead of SQLite: each data
dir gets its own fresh database in the cluster at `CLOUDPHONE_TEST_DATABASE_URL` (an admin URL,
as `scripts/pg-cluster start` prints), so the whole suite runs once per store.

With `CLOUDPHONE_TEST_OBJECT_STORE=s3` every server keeps its objects in a bucket of its own on the
S3-protocol server at `CLOUDPHONE_TEST_S3_ENDPOINT` (as `scripts/s3-server start` prints), named
after its data dir (so a restarted server finds its objects)."""

import contextlib
import json
import os
import queue
import re
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
from alibabacloud_eds_aic20230930 import models
from alibabacloud_eds_aic20230930.client import Client
from alibabacloud_tea_openapi import models as open_api_models

ROOT = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("CLOUDPHONE_BIN", ROOT / "target" / "debug" / "cloudphone"))
KEY_ID = "testid"
KEY_SECRET = "testsecret"
STORE = os.environ.get("CLOUDPHONE_TEST_STORE", "sqlite")
ADMIN_URL = os.environ.get("CLOUDPHONE_TEST_DATABASE_URL")
assert STORE in ("sqlite", "postgres"), STORE
if STORE == "postgres" and not ADMIN_URL:
    raise RuntimeError("CLOUDPHONE_TEST_STORE=postgres needs CLOUDPHONE_TEST_DATABASE_URL "
                       "(start a cluster with scripts/pg-cluster start DIR)")

OBJECT_STORE = os.environ.get("CLOUDPHONE_TEST_OBJECT_STORE", "local")
S3_ENDPOINT = os.environ.get("CLOUDPHONE_TEST_S3_ENDPOINT")
# moto accepts any access key; the server reads it from the environment only.
S3_KEY = {"CLOUDPHONE_S3_ACCESS_KEY_ID": "testing", "CLOUDPHONE_S3_SECRET_ACCESS_KEY": "testing"}
assert OBJECT_STORE in ("local", "s3"), OBJECT_STORE
if OBJECT_STORE == "s3" and not S3_ENDPOINT:
    raise RuntimeError("CLOUDPHONE_TEST_OBJECT_STORE=s3 needs CLOUDPHONE_TEST_S3_ENDPOINT "
                       "(start a server with scripts/s3-server start DIR)")

_databases = {}
_buckets = set()


def psql(url, sql):
    """Runs `sql` with psql against `url`; returns its unaligned output."""
    return subprocess.run(["psql", url, "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql],
                          check=True, capture_output=True, text=True).stdout


def database_url(name):
    """The URL of database `name` in the test cluster, created empty on first use."""
    if name not in _databases:
        psql(ADMIN_URL, f'CREATE DATABASE "{name}"')
        _databases[name] = urllib.parse.urlsplit(ADMIN_URL)._replace(path="/" + name).geturl()
    return _databases[name]


def fresh_database():
    """A new empty database in the test cluster."""
    return database_url(f"cp_{uuid.uuid4().hex[:16]}")


def s3_bucket(name=None):
    """A bucket on the test S3 server (created on first use; a fresh one without a name)."""
    if not S3_ENDPOINT:
        raise RuntimeError("this test needs an S3-protocol server: run scripts/s3-server start DIR "
                           "and export CLOUDPHONE_TEST_S3_ENDPOINT=<the URL it prints>")
    name = name or f"cp-{uuid.uuid4().hex[:16]}"
    if name not in _buckets:
        import boto3  # a dependency of moto[server] (tests/sdk/requirements.txt)
        s3 = boto3.client("s3", endpoint_url=S3_ENDPOINT, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        try:
            s3.create_bucket(Bucket=name)
        except s3.exceptions.BucketAlreadyOwnedByYou:
            pass
        _buckets.add(name)
    return name


def s3_object_store(bucket, **settings):
    """The --object-store URL of `bucket` on the test S3 server."""
    query = urllib.parse.urlencode({"endpoint": S3_ENDPOINT, "path_style": "true", **settings})
    return f"s3://{bucket}?{query}"


def staging_dir(server):
    """Where the server stages uploads: beside local objects, in tmp/uploads with S3."""
    if server.object_store and server.object_store.startswith("s3://"):
        return server.data_dir / "tmp" / "uploads"
    return server.data_dir / "objects" / ".staging"


# The logs of the servers started since the current test began (see pytest_runtest_makereport).
_started_logs = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test's report carries the end of each log of the servers it started (CI shows
    only the report)."""
    report = yield
    if report.failed:
        for name in dict.fromkeys(_started_logs):
            try:
                with open(name, "rb") as f:
                    f.seek(0, os.SEEK_END)
                    f.seek(max(0, f.tell() - 6000))
                    tail = f.read().decode(errors="replace")
            except OSError as e:
                tail = f"({e})"
            report.sections.append((f"server log {Path(name).name} (its end)", tail))
    if report.when == "teardown":
        _started_logs.clear()
    return report


def _pump_lines(stream, lines):
    """Puts each line of `stream` on `lines`, then None at its end."""
    for raw in iter(stream.readline, b""):
        lines.put(raw.decode(errors="replace"))
    lines.put(None)


class Server:
    """One `cloudphone serve` process."""

    def __init__(self, data_dir, sim_delay_ms=50, extra_args=(), key=(KEY_ID, KEY_SECRET),
                 database=None, preexec_fn=None, object_store=None):
        """`database`: a postgres:// URL to serve from (several servers may share one); by
        default SQLite in the data dir, or under CLOUDPHONE_TEST_STORE=postgres a database of
        the test cluster named after the data dir (so a restarted server finds its data).
        `preexec_fn`: run in the server's process before it starts (its resource limits).
        `object_store`: an --object-store URL; by default the data dir's, or under
        CLOUDPHONE_TEST_OBJECT_STORE=s3 a bucket named after the data dir. `key=None`: no root
        key in the environment (the server's own, in its data dir)."""
        self.data_dir = Path(data_dir)
        if database is None and STORE == "postgres":
            name = "cp_" + hashlib.sha1(str(self.data_dir.resolve()).encode()).hexdigest()[:16]
            database = database_url(name)
        self.database = database
        if object_store is None and OBJECT_STORE == "s3":
            name = "cp-" + hashlib.sha1(str(self.data_dir.resolve()).encode()).hexdigest()[:16]
            object_store = s3_object_store(s3_bucket(name))
        self.object_store = object_store
        self.sim_delay_ms = sim_delay_ms
        self.extra_args = list(extra_args)
        self.key = key
        self.preexec_fn = preexec_fn
        self.proc = None
        self.port = None

    def start(self):
        env = dict(os.environ)
        if self.key:
            env["CLOUDPHONE_ACCESS_KEY_ID"], env["CLOUDPHONE_ACCESS_KEY_SECRET"] = self.key
        else:
            env.pop("CLOUDPHONE_ACCESS_KEY_ID", None)
            env.pop("CLOUDPHONE_ACCESS_KEY_SECRET", None)
        env.setdefault("RUST_LOG", "info")
        args = [str(BINARY), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(self.data_dir)]
        if self.database:
            args += ["--database-url", self.database]
        if self.object_store:
            args += ["--object-store", self.object_store]
            env.update(S3_KEY)
        if self.sim_delay_ms is not None:
            args += ["--sim-delay-ms", str(self.sim_delay_ms)]
        self.log = open(self.data_dir.parent / f"{self.data_dir.name}.log", "ab")
        _started_logs.append(self.log.name)
        self.proc = subprocess.Popen(args + self.extra_args, stdout=subprocess.PIPE, stderr=self.log, env=env,
                                     preexec_fn=self.preexec_fn)
        # A thread reads the server's stdout, so that a server that hangs before it says where
        # it listens fails this start after 30 s instead of blocking the suite, and so that its
        # later output never fills the pipe.
        lines = queue.Queue()
        threading.Thread(target=_pump_lines, args=(self.proc.stdout, lines), daemon=True).start()
        deadline = time.time() + 30
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.time()))
            except queue.Empty:
                self.kill()
                raise RuntimeError(f"server did not say where it listens within 30 s "
                                   f"(its log: {self.log.name})") from None
            if line is None:
                raise RuntimeError(f"server exited with {self.proc.wait()} (its log: {self.log.name})")
            m = re.search(r"listening on https?://[\d.]+:(\d+)", line)
            if m:
                self.port = int(m.group(1))
                return self

    @property
    def endpoint(self):
        return f"127.0.0.1:{self.port}"

    def client(self, key=None, **config):
        key_id, secret = key or self.key
        return Client(open_api_models.Config(access_key_id=key_id, access_key_secret=secret,
                                             endpoint=self.endpoint, protocol="http", **config))

    def node_id(self):
        """The node id this server chose at its last start (from its log, which a restart
        appends to)."""
        found = re.findall(r"engine started node=(\S+)", Path(self.log.name).read_text())
        assert found, f"no node id in {self.log.name}"
        return found[-1]

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def create_key(self, account, user=None):
        args = [str(BINARY), "keys", "create", "--data-dir", str(self.data_dir), "--account", account]
        if self.database:
            args += ["--database-url", self.database]
        if user:
            args += ["--user", user]
        out = subprocess.run(args, check=True, capture_output=True).stdout
        key = json.loads(out)
        return key["AccessKeyId"], key["AccessKeySecret"]


@pytest.fixture(scope="session")
def workdir():
    with tempfile.TemporaryDirectory(prefix="cloudphone-sdk-") as d:
        yield Path(d)


@pytest.fixture(scope="session")
def server(workdir):
    # The tests' own web servers (file and APK sources) are on loopback, which downloads may
    # reach only with --allow-private-fetch (tests/sdk/test_ssrf.py tests the default).
    s = Server(workdir / "shared", extra_args=["--allow-private-fetch"]).start()
    yield s
    s.stop()


@pytest.fixture(scope="session")
def client(server):
    return server.client()


# --- real phones: the Docker engine scripts/test starts, and the test phone image -------------

DOCKER_HOST = os.environ.get("CLOUDPHONE_TEST_DOCKER_HOST")
PHONE_IMAGE = "cloudphone-test-phone:sdk"


def docker(*args, check=True):
    """The docker CLI against the test engine; its stdout."""
    return subprocess.run(["docker", *args], env=dict(os.environ, DOCKER_HOST=DOCKER_HOST),
                          capture_output=True, text=True, check=check).stdout.strip()


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_port_range(n):
    """`n` consecutive ports free on 127.0.0.1 now, below Linux's ephemeral ports (32768-60999,
    which outgoing connections take): for an ADB gateway, which opens every port of its range."""
    import random
    import socket
    for _ in range(100):
        low = random.randrange(20000, 32000 - n, 10)
        socks = []
        try:
            for p in range(low, low + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
        return low, low + n - 1
    raise RuntimeError("no free port range")


@pytest.fixture(scope="session")
def phone_image():
    """The test phone image (busybox + the test-adbd TEST FIXTURE), built on the test engine.
    Without an engine the tests that need it fail: they never skip quietly."""
    if not DOCKER_HOST:
        pytest.fail("CLOUDPHONE_TEST_DOCKER_HOST is not set (scripts/test starts a private dockerd)",
                    pytrace=False)
    subprocess.run([str(ROOT / "tests/fixtures/phone-image/build"), PHONE_IMAGE,
                    str(ROOT / "target/debug/test-adbd")],
                   env=dict(os.environ, DOCKER_HOST=DOCKER_HOST), check=True, capture_output=True)
    return PHONE_IMAGE


@pytest.fixture(scope="session")
def adb_server():
    """A private ADB server (Debian's adb) on a free port, killed at the end."""
    with private_adb_server() as port:
        yield port


@contextlib.contextmanager
def private_adb_server():
    """A private ADB server (Debian's adb) on a free port while the block runs: its port."""
    port = free_port()
    subprocess.run(["adb", "-P", str(port), "start-server"], check=True, capture_output=True)
    try:
        yield port
    finally:
        subprocess.run(["adb", "-P", str(port), "kill-server"], capture_output=True)


def self_signed_certificate(directory):
    """A fresh P-256 certificate for 127.0.0.1 and its key in `directory`: (cert path, key path)."""
    directory.mkdir(exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


def run_shell(client, instance, command, timeout=120):
    """(Output, ExitCode) of RunCommand on one phone, which must finish."""
    r = client.run_command(models.RunCommandRequest(instance_ids=[instance], command_content=command)).body
    wait_batch(client, r.invoke_id, timeout=timeout)
    (t,) = tasks_of(client, invoke_id=r.invoke_id, level=2)
    assert t.task_status == "Finished", (t.error_code, t.error_msg)
    out = json.loads(t.result)
    return out["Output"], out["ExitCode"]


def instance_status(client, instance):
    return describe_instances(client, [instance])[instance].android_instance_status


def wait_for(predicate, timeout=30, interval=0.05, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def describe_instances(client, ids):
    r = client.describe_android_instances(models.DescribeAndroidInstancesRequest(android_instance_ids=ids, max_results=100))
    return {m.android_instance_id: m for m in r.body.instance_model}


def create_group(client, n=2, name="farm"):
    """A new group of `n` simulated phones, waited for until every one is RUNNING."""
    r = client.create_android_instance_group(models.CreateAndroidInstanceGroupRequest(
        biz_region_id="cn-hangzhou", image_id="imgc-simandroid140000",
        instance_group_spec="acp.basic.small", number_of_instances=n, instance_group_name=name))
    ids = r.body.instance_group_infos[0].instance_ids
    assert len(ids) == n
    wait_for(lambda: all(m.android_instance_status == "RUNNING" for m in describe_instances(client, ids).values())
             and len(describe_instances(client, ids)) == n, what="instances RUNNING")
    return r.body.instance_group_ids[0], ids


def tasks_of(client, **filters):
    """Every task matching the filters, all pages walked."""
    out, token = [], None
    while True:
        r = client.describe_tasks(models.DescribeTasksRequest(max_results=100, next_token=token, **filters))
        out += r.body.data
        token = r.body.next_token
        if not token:
            return out


def wait_batch(client, invoke_id, timeout=60):
    """The batch of `invoke_id` once it reached a terminal status."""
    def done():
        batch = tasks_of(client, invoke_id=invoke_id, level=1)
        return batch[0] if batch and batch[0].task_status not in ("Waiting", "Processing") else None
    return wait_for(done, timeout=timeout, what=f"batch {invoke_id} to finish")


# ---------------------------------------------------------------------------------------------
# Helpers shared by the topic files.

import base64  # noqa: E402
import datetime  # noqa: E402
import hashlib  # noqa: E402
import hmac  # noqa: E402
import urllib.parse  # noqa: E402
import uuid  # noqa: E402

import requests  # noqa: E402
from alibabacloud_tea_openapi import utils_models as open_api_util_models  # noqa: E402
from alibabacloud_tea_openapi.exceptions import ClientException  # noqa: E402
from darabonba.runtime import RuntimeOptions  # noqa: E402

API_VERSION = "2023-09-30"
ISO_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
REQUEST_ID_RE = re.compile(r"^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$")
UA = "AlibabaCloud (Linux; x86_64) Python/3.11.7 Core/0.4.3 TeaDSL/2"


def call(client, action, query=None, body=None):
    """Any action through the SDK's generic `call_api` (the way a user calls an extension), with
    a hand-built query and optional form body; returns the response body as a dict."""
    params = open_api_util_models.Params(
        action=action, version=API_VERSION, protocol="HTTP", pathname="/", method="POST",
        auth_type="AK", style="RPC", req_body_type="formData", body_type="json")
    request = open_api_util_models.OpenApiRequest(
        query={k: str(v) for k, v in (query or {}).items()},
        body=None if body is None else {k: str(v) for k, v in body.items()})
    return client.call_api(params, request, RuntimeOptions())["body"]


def api_error(fn, *args, **kwargs):
    """The ClientException `fn` raises; fails the test if it succeeds."""
    with pytest.raises(ClientException) as info:
        fn(*args, **kwargs)
    e = info.value
    assert 400 <= e.status_code < 500, (e.status_code, e.code)
    assert REQUEST_ID_RE.match(e.request_id or ""), e.request_id
    return e


def inject_fault(client, instance_id, task_type, error_code="OperationFailed", error_msg=None, count=None):
    query = {"TaskType": task_type, "InstanceId": instance_id, "ErrorCode": error_code}
    if error_msg is not None:
        query["ErrorMsg"] = error_msg
    if count is not None:
        query["Count"] = count
    return call(client, "InjectSimulatedFault", query)


def clear_faults(client):
    return call(client, "ClearSimulatedFaults")


def total_tasks(client, **filters):
    return client.describe_tasks(models.DescribeTasksRequest(max_results=1, **filters)).body.total_count


# --- a signer of our own (api-contract.md §2.4), so that tests control date, nonce and bytes ---

def pct(s):
    """RFC 3986 over UTF-8 (or over raw bytes); unreserved A-Z a-z 0-9 - _ . ~ ; uppercase hex."""
    data = s if isinstance(s, bytes) else s.encode("utf-8")
    return "".join(chr(b) if (b < 128 and (chr(b).isalnum() or chr(b) in "-_.~")) else "%%%02X" % b
                   for b in data)


def acs3_signature(method, path, query, headers, signed, body, secret):
    cq = "&".join(f"{k}={pct(v)}" for k, v in sorted(query))
    ch = "".join(f"{h}:{headers[h].strip()}\n" for h in signed)
    payload = hashlib.sha256(body).hexdigest()
    creq = f"{method}\n{path}\n{cq}\n{ch}\n{';'.join(signed)}\n{payload}"
    sts = "ACS3-HMAC-SHA256\n" + hashlib.sha256(creq.encode()).hexdigest()
    return hmac.new(secret.encode(), sts.encode(), hashlib.sha256).hexdigest()


def v1_signature(method, params, secret):
    cqs = "&".join(f"{pct(k)}={pct(v)}" for k, v in sorted(params))
    sts = f"{method}&{pct('/')}&{pct(cqs)}"
    return base64.b64encode(hmac.new((secret + "&").encode(), sts.encode(), hashlib.sha1).digest()).decode()


def iso(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_now(offset_s=0):
    return iso(datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=offset_s))


def new_nonce():
    return uuid.uuid4().hex


def _encode_pairs(pairs):
    """`urlencode` of pairs whose values may be raw bytes (sent as %XX, even if not UTF-8)."""
    return "&".join(f"{urllib.parse.quote_plus(k)}={urllib.parse.quote_plus(v)}" for k, v in pairs)


def signed_request(server, action, query=(), body=None, key=None, date=None, nonce=None,
                   version=API_VERSION, sign_secret=None, headers=None, timeout=30):
    """A POST signed with ACS3-HMAC-SHA256 as the SDK signs it, built by hand.

    `query`: pairs (values str or bytes); `body`: None, raw bytes, or pairs for a form body.
    `key`: (id, secret), default the server's; `sign_secret` signs with another secret.
    Returns the `requests.Response`."""
    key_id, secret = key or server.key
    if isinstance(query, dict):
        query = list(query.items())
    if isinstance(body, dict):
        body = list(body.items())
    h = {
        "host": server.endpoint,
        "x-acs-action": action,
        "x-acs-version": version,
        "x-acs-date": date or utc_now(),
        "x-acs-signature-nonce": nonce or new_nonce(),
        "accept": "application/json",
        "user-agent": UA,
        "x-acs-credentials-provider": "static_ak",
    }
    if body is None:
        payload = b""
    else:
        payload = body if isinstance(body, bytes) else _encode_pairs(sorted(body)).encode()
        h["content-type"] = "application/x-www-form-urlencoded"
    h["x-acs-content-sha256"] = hashlib.sha256(payload).hexdigest()
    h.update(headers or {})
    signed = sorted(h)
    sig = acs3_signature("POST", "/", query, h, signed, payload, sign_secret or secret)
    h["Authorization"] = f"ACS3-HMAC-SHA256 Credential={key_id},SignedHeaders={';'.join(signed)},Signature={sig}"
    url = f"http://{server.endpoint}/"
    if query:
        url += "?" + _encode_pairs(query)
    return requests.post(url, data=payload, headers=h, timeout=timeout)


def v1_request(server, action, query=(), key=None, timestamp=None, nonce=None, method="GET",
               sign_secret=None, timeout=30):
    """A request signed with the legacy HMAC-SHA1 scheme (all parameters in the query)."""
    key_id, secret = key or server.key
    params = list(query.items() if isinstance(query, dict) else query) + [
        ("Action", action), ("Version", API_VERSION), ("Format", "JSON"),
        ("Timestamp", timestamp or utc_now()), ("SignatureNonce", nonce or new_nonce()),
        ("SignatureMethod", "HMAC-SHA1"), ("SignatureVersion", "1.0"), ("AccessKeyId", key_id)]
    params.append(("Signature", v1_signature(method, params, sign_secret or secret)))
    url = f"http://{server.endpoint}/?" + _encode_pairs(params)
    return requests.request(method, url, timeout=timeout)


def error_code(resp):
    """(status, Code) of a raw error response, checking the vendor's error shape."""
    body = resp.json()
    assert resp.status_code >= 400, (resp.status_code, body)
    for field in ("RequestId", "HostId", "Code", "Message"):
        assert body.get(field), (field, body)
    return resp.status_code, body["Code"]


class RawResponse:
    """The little of `requests.Response` that `error_code` needs."""

    def __init__(self, status, body):
        self.status_code = status
        self.content = body

    def json(self):
        return json.loads(self.content)


def raw_post(server, target, headers=None, body=b""):
    """POST with the request target sent byte for byte (`requests` would re-quote a bad escape)."""
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.putrequest("POST", target, skip_host=True, skip_accept_encoding=True)
        for k, v in {"host": server.endpoint, **(headers or {})}.items():
            conn.putheader(k, v)
        conn.putheader("content-length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        return RawResponse(resp.status, resp.read())
    finally:
        conn.close()
