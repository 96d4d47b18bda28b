"""Connections the server makes on a tenant's behalf (issue 21, items 1 and 7): SendFile's
DOWNLOAD_URL and OSS_BRIDGED sources, CreateApp's OssAppUrl, InstallApp's CustomAppInfo
DownloadUrl and webhooks go through one outbound client. By default it connects only to public
addresses (every special-purpose range refused, in every spelling), checks each redirect hop
again, ends stalled and endless transfers, caps the bytes it keeps, and fails with one message
whether an address was refused, closed or silent.

Everything here is on loopback: 127.0.0.1 plays the server's own network (an internal service
that only the server can reach); 127.0.0.2, allowed by name with --allow-fetch-net, plays a
public host where the tarpit, the oversize file and the redirector live."""

import hashlib
import http.server
import socket
import threading
import time

import pytest
from alibabacloud_eds_aic20230930 import models

from conftest import Server, api_error, call, create_group, wait_batch, wait_for
from test_apps import make_apk
from test_files import children, send, shell

SECRET = b"internal only: the database password is hunter2\n"
UNREACHABLE = "could not be fetched: the address is not allowed, refused the connection or did not answer"


class Web:
    """An HTTP server of the test's own on `host`, answering each path as `routes` says and
    counting the requests to each."""

    def __init__(self, host="127.0.0.1", routes=None):
        self.routes = dict(routes or {})
        self.hits = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.hits.append(self.path)
                route = outer.routes.get(self.path)
                if route is None:
                    self.send_error(404)
                else:
                    route(self)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer((host, 0), Handler)
        self.host, self.port = host, self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path, host=None):
        return f"http://{host or self.host}:{self.port}{path}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def body(data, length=True):
    def answer(h):
        h.send_response(200)
        if length:
            h.send_header("Content-Length", str(len(data)))
        else:
            h.close_connection = True
        h.end_headers()
        h.wfile.write(data)
    return answer


def redirect(to):
    def answer(h):
        h.send_response(302)
        h.send_header("Location", to)
        h.send_header("Content-Length", "0")
        h.end_headers()
    return answer


def trickle(every, length=1000):
    """The head, then one byte of the body every `every` seconds (a tarpit)."""
    def answer(h):
        h.send_response(200)
        h.send_header("Content-Length", str(length))
        h.end_headers()
        for _ in range(length):
            try:
                h.wfile.write(b"x")
                h.wfile.flush()
            except OSError:
                return
            time.sleep(every)
    return answer


def silent(h):
    """Accepts the request and never answers."""
    time.sleep(20)


def closed_port(host="127.0.0.1"):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def internal(tmp_path_factory):
    """The internal service: pages only the server's own network may read."""
    apk = make_apk(tmp_path_factory.mktemp("apk"), "com.internal.tool").read_bytes()
    web = Web("127.0.0.1", {"/secret": body(SECRET), "/app.apk": body(apk)})
    web.apk = apk
    yield web
    web.close()


def start(workdir, name, *args):
    s = Server(workdir / name, sim_delay_ms=20, extra_args=list(args)).start()
    s.phones = create_group(s.client(), 2, name=name)[1]
    return s


@pytest.fixture(scope="module")
def strict(workdir):
    """The defaults: public addresses only."""
    s = start(workdir, "ssrf-strict")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def listed(workdir):
    """127.0.0.2 allowed by name (the 'public' host), and short limits."""
    s = start(workdir, "ssrf-listed", "--allow-fetch-net", "127.0.0.2/32", "--fetch-idle-timeout-ms", "1000",
              "--fetch-timeout-secs", "3", "--max-download-bytes", "65536")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def permissive(workdir):
    s = start(workdir, "ssrf-open", "--allow-private-fetch")
    yield s
    s.stop()


def send_each(client, phone, name, sources, upload_type="DOWNLOAD_URL"):
    """One SendFile per source to `phone`, to /sdcard/Download/<name>-<n>.bin; the children, in
    order."""
    out = []
    for n, source in enumerate(sources):
        r = send(client, [phone], source, f"/sdcard/Download/{name}-{n}.bin", upload_type=upload_type)
        (t,) = children(client, r.request_id).values()
        out.append(t)
    return out


def files_on(client, phone):
    return shell(client, phone, "ls /sdcard/Download")["Output"].split()


def test_a_tenant_cannot_read_the_server_s_own_network(strict, internal):
    """SendFile (both URL types), InstallApp of a CustomAppInfo URL and CreateApp of an http URL
    pointing at the server's loopback, in every spelling of it: refused, the internal service
    never asked, nothing on the phone."""
    c, phone = strict.client(), strict.phones[0]
    p = internal.port
    spellings = [f"http://127.0.0.1:{p}/secret", f"http://localhost:{p}/secret", f"http://[::ffff:127.0.0.1]:{p}/secret",
                 f"http://2130706433:{p}/secret", f"http://127.1:{p}/secret", f"http://0.0.0.0:{p}/secret"]
    for upload_type in ("DOWNLOAD_URL", "OSS_BRIDGED"):
        for url, t in zip(spellings, send_each(c, phone, "leak", spellings, upload_type)):
            assert (t.task_status, t.error_code) == ("Failed", "DownloadFailed"), (url, t.task_status, t.error_msg)
            assert t.error_msg == f"{url}: {UNREACHABLE}.", t.error_msg
    assert not [f for f in files_on(c, phone) if f.startswith("leak-")]
    # InstallApp of an app whose CustomAppInfo points inside (with the right MD5: the only thing
    # stopping it is the filter).
    app_id = c.create_app(models.CreateAppRequest(custom_app_info=models.CreateAppRequestCustomAppInfo(
        apk_size="0.01", download_url=internal.url("/app.apk"), md_5=hashlib.md5(internal.apk).hexdigest(),
        package_name="com.internal.tool", version="1.7", version_code="7"))).body.app_id
    r = c.install_app(models.InstallAppRequest(app_id_list=[str(app_id)], instance_id_list=[phone])).body
    (t,) = children(c, r.request_id).values()
    assert (t.task_status, t.error_code) == ("Failed", "InstallAppFailed"), (t.task_status, t.error_msg)
    assert "package:com.internal.tool" not in shell(c, phone, "pm list packages -3")["Output"].split()
    # CreateApp reads the APK at once: refused too.
    e = api_error(c.create_app, models.CreateAppRequest(oss_app_url=internal.url("/app.apk")))
    assert (e.status_code, e.code) == (400, "InvalidParameter.OssAppUrl")
    assert internal.hits == []


def test_a_redirect_into_the_server_s_network_is_refused(strict, internal):
    redirector = Web("127.0.0.2", {"/go": redirect(internal.url("/secret"))})
    try:
        c, phone = strict.client(), strict.phones[1]
        (t,) = send_each(c, phone, "hop", [redirector.url("/go")])
        assert (t.task_status, t.error_code) == ("Failed", "DownloadFailed"), (t.task_status, t.error_msg)
        assert "hop-0.bin" not in files_on(c, phone)
        assert internal.hits == []
    finally:
        redirector.close()


def test_a_redirect_is_checked_again_even_from_an_allowed_host(listed, internal):
    """The first hop (127.0.0.2, allowed by --allow-fetch-net) is fetched; a redirect from it to
    the server's loopback, by address or by name, is refused; one to another allowed URL is
    followed."""
    redirector = Web("127.0.0.2")
    redirector.routes.update({"/page": body(b"public page\n"), "/to-secret": redirect(internal.url("/secret")),
                              "/to-localhost": redirect(internal.url("/secret", host="localhost")),
                              "/to-page": redirect(redirector.url("/page"))})
    try:
        c, phone = listed.client(), listed.phones[0]
        page, by_ip, by_name, allowed = send_each(
            c, phone, "hops", [redirector.url(p) for p in ("/page", "/to-secret", "/to-localhost", "/to-page")])
        assert page.task_status == "Finished", page.error_msg
        for t in (by_ip, by_name):
            assert (t.task_status, t.error_code) == ("Failed", "DownloadFailed"), (t.task_status, t.error_msg)
            assert UNREACHABLE in t.error_msg
        assert allowed.task_status == "Finished", allowed.error_msg
        assert shell(c, phone, "cat /sdcard/Download/hops-3.bin")["Output"] == "public page\n"
        assert {"hops-1.bin", "hops-2.bin"}.isdisjoint(files_on(c, phone))
        assert internal.hits == []
        assert redirector.hits.count("/to-secret") == 1 and redirector.hits.count("/page") == 2
    finally:
        redirector.close()


def test_allow_private_fetch_lets_in_the_server_s_network(permissive, internal):
    redirector = Web("127.0.0.2", {"/go": redirect(internal.url("/secret"))})
    try:
        c, phone = permissive.client(), permissive.phones[0]
        direct, redirected = send_each(c, phone, "inside", [internal.url("/secret"), redirector.url("/go")])
        assert (direct.task_status, redirected.task_status) == ("Finished", "Finished"), (direct.error_msg, redirected.error_msg)
        for n in (0, 1):
            assert shell(c, phone, f"cat /sdcard/Download/inside-{n}.bin")["Output"].encode() == SECRET
        assert c.create_app(models.CreateAppRequest(oss_app_url=internal.url("/app.apk"))).body.app_id
    finally:
        internal.hits.clear()
        redirector.close()


def create_app_outcome(server, url):
    """(HTTP status, Code, Message without the request id) of a CreateApp that must fail."""
    e = api_error(server.client(read_timeout=15000).create_app, models.CreateAppRequest(oss_app_url=url))
    return e.status_code, e.code, e.message.split(" request id: ")[0]


def test_create_app_is_not_a_port_scanner(strict, internal):
    """A closed loopback port and one where a real APK waits: CreateApp fails the same way for
    both (code and message), so its answers tell nothing about what listens where."""
    closed = f"http://127.0.0.1:{closed_port()}/app.apk"
    seen = {url: create_app_outcome(strict, url) for url in (closed, internal.url("/app.apk"))}
    assert len(set(seen.values())) == 1, seen
    assert internal.hits == []


def test_closed_silent_and_refused_fail_alike(listed, internal):
    """With a host allowed: its closed port, its port that accepts and stays silent (the idle
    timeout ends it) and a refused address answering on loopback fail with one message."""
    quiet = Web("127.0.0.2", {"/app.apk": silent})
    try:
        seen = {url: create_app_outcome(listed, url) for url in (
            f"http://127.0.0.2:{closed_port('127.0.0.2')}/app.apk", quiet.url("/app.apk"), internal.url("/app.apk"))}
    finally:
        quiet.close()
    assert len(set(seen.values())) == 1, seen
    ((status, code, message),) = set(seen.values())
    assert (status, code) == (400, "InvalidParameter.OssAppUrl")
    assert UNREACHABLE in message, message
    assert internal.hits == []


def test_a_tarpit_ends_at_the_idle_timeout_and_a_slow_drip_at_the_total_one(listed):
    """A byte every 3 s trips the 1 s idle timeout; a byte every 0.3 s never does, and the
    3 s total timeout ends it. Both fail in seconds, and keep nothing."""
    tarpit = Web("127.0.0.2", {"/slow": trickle(3), "/drip": trickle(0.3)})
    try:
        c = listed.client()
        started = time.time()
        slow = send(c, [listed.phones[0]], tarpit.url("/slow"), "/sdcard/Download/slow.bin", upload_type="DOWNLOAD_URL")
        drip = send(c, [listed.phones[1]], tarpit.url("/drip"), "/sdcard/Download/drip.bin", upload_type="DOWNLOAD_URL")
        (s,) = children(c, slow.request_id).values()
        (d,) = children(c, drip.request_id).values()
        took = time.time() - started
    finally:
        tarpit.close()
    assert (s.task_status, s.error_code) == ("Failed", "DownloadFailed"), (s.task_status, s.error_msg)
    assert "sent nothing for 1 s" in s.error_msg, s.error_msg
    assert (d.task_status, d.error_code) == ("Failed", "DownloadFailed"), (d.task_status, d.error_msg)
    assert "took longer than 3 s" in d.error_msg, d.error_msg
    assert took < 10, took
    assert "slow.bin" not in files_on(c, listed.phones[0]) and "drip.bin" not in files_on(c, listed.phones[1])


def test_a_download_over_the_cap_fails_and_nothing_is_stored(listed):
    big = bytes(range(256)) * 800  # 200 KiB, over the 64 KiB cap
    small = b"s" * 60000
    web = Web("127.0.0.2", {"/big": body(big), "/big-unannounced": body(big, length=False),
                            "/small": body(small, length=False)})
    try:
        c, phone = listed.client(), listed.phones[0]
        announced, unannounced, fits = send_each(
            c, phone, "cap", [web.url("/big"), web.url("/big-unannounced"), web.url("/small")])
        for t in (announced, unannounced):
            assert (t.task_status, t.error_code) == ("Failed", "FileTooLarge"), (t.task_status, t.error_msg)
            assert "larger than the download limit of 65536 bytes" in t.error_msg, t.error_msg
        assert fits.task_status == "Finished", fits.error_msg
        listing = files_on(c, phone)
        assert "cap-0.bin" not in listing and "cap-1.bin" not in listing and "cap-2.bin" in listing
        e = api_error(c.create_app, models.CreateAppRequest(oss_app_url=web.url("/big")))
        assert (e.status_code, e.code) == (400, "InvalidParameter.OssAppUrl")
        assert "larger than the download limit" in e.message
        app_id = c.create_app(models.CreateAppRequest(custom_app_info=models.CreateAppRequestCustomAppInfo(
            apk_size="0.2", download_url=web.url("/big-unannounced"), md_5=hashlib.md5(big).hexdigest(),
            package_name="com.example.big", version="1", version_code="1"))).body.app_id
        r = c.install_app(models.InstallAppRequest(app_id_list=[str(app_id)], instance_id_list=[phone])).body
        (t,) = children(c, r.request_id).values()
        assert (t.task_status, t.error_code) == ("Failed", "FileTooLarge"), (t.task_status, t.error_msg)
    finally:
        web.close()


# Item 7: blocks the webhook filter let through before, in the forms that were accepted
# (198.18/15 and 240/4; IPv4-compatible, NAT64, 6to4 and site-local IPv6), and their neighbours
# in the special-purpose registries. Literals only: nothing is resolved, nothing is sent.
SPECIAL = ["http://198.18.0.1/h", "http://198.19.255.254/h", "http://240.0.0.1/h", "http://255.255.255.255/h",
           "http://192.0.0.8/h", "http://192.88.99.1/h", "http://[::127.0.0.1]/h", "http://[::a9fe:a9fe]/h",
           "http://[64:ff9b::127.0.0.1]/h", "http://[64:ff9b::a9fe:a9fe]/h", "http://[64:ff9b:1::a00:1]/h",
           "http://[2002:7f00:1::1]/h", "http://[2002:a9fe:a9fe::1]/h", "http://[fec0::1]/h", "http://[100::1]/h",
           "http://[2001::1]/h", "http://[2001:db8::1]/h", "http://[::ffff:0:7f00:1]/h"]


def test_webhooks_refuse_every_special_purpose_block(strict):
    # An account of its own that runs no batch: nothing could ever be delivered.
    c = strict.client(key=strict.create_key("ssrf-hooks"))
    accepted = []
    for url in SPECIAL:
        try:
            hook = call(c, "CreateWebhook", {"Url": url, "Secret": "s" * 20})["WebhookId"]
        except Exception as e:  # noqa: BLE001 (the SDK's ClientException)
            assert getattr(e, "code", None) == "InvalidParameter.Url", (url, e)
        else:
            accepted.append(url)
            call(c, "DeleteWebhook", {"WebhookId": hook})
    assert accepted == []


def test_a_delivery_to_a_refused_address_is_never_sent(workdir):
    """A webhook made while private receivers were allowed, delivered after they no longer are:
    the sender's own connection refuses it, and the delivery ends at once."""
    posts = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            posts.append(self.path)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    data = workdir / "ssrf-hooks-later"
    s = Server(data, sim_delay_ms=20, extra_args=["--webhook-allow-private"]).start()
    try:
        hook = call(s.client(), "CreateWebhook", {"Url": f"http://127.0.0.1:{receiver.server_address[1]}/h",
                                                  "Secret": "s" * 20})["WebhookId"]
    finally:
        s.stop()
    s = Server(data, sim_delay_ms=20, extra_args=["--webhook-retry-ms", "50"]).start()
    try:
        c = s.client()
        _, ids = create_group(c, 1, name="hooked")
        r = c.reboot_android_instances_in_group(models.RebootAndroidInstancesInGroupRequest(android_instance_ids=ids)).body
        batch = wait_batch(c, r.request_id)
        (d,) = wait_for(lambda: [d for d in call(c, "DescribeWebhookDeliveries", {"WebhookId": hook, "TaskId": batch.task_id})["Deliveries"]
                                 if d["Status"] == "Failed"], what="the delivery failed")
        # Ended at its first attempt, saying nothing of where the name led.
        assert d["Attempts"] == 1, d
        assert d["LastError"] == "the receiver's address is not allowed (not a public address)", d
        assert posts == []
    finally:
        s.stop()
        receiver.shutdown()
