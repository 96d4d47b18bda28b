"""HTTPS: `serve --tls-cert --tls-key` with a certificate made here for 127.0.0.1; the official
SDK calls it over TLS, verifying against that certificate, and follows a batch; the links in task
results are https; plain HTTP and an unverified peer get nothing. The command-line client and `cp`
speak HTTPS with `--ca-file`, and without it refuse the certificate in plain words."""

import json
import os
import subprocess

import pytest
import requests
from alibabacloud_eds_aic20230930 import models
from alibabacloud_eds_aic20230930.client import Client
from alibabacloud_tea_openapi import models as open_api_models
from alibabacloud_tea_util.models import RuntimeOptions

from conftest import BINARY, Server, self_signed_certificate, wait_for


@pytest.fixture(scope="module")
def certificate(workdir):
    return self_signed_certificate(workdir / "tls")


@pytest.fixture(scope="module")
def tls_server(workdir, certificate):
    cert, key = certificate
    s = Server(workdir / "tls-data", extra_args=["--tls-cert", str(cert), "--tls-key", str(key)]).start()
    yield s
    s.stop()


def sdk(server):
    return Client(open_api_models.Config(access_key_id=server.key[0], access_key_secret=server.key[1],
                                         endpoint=server.endpoint, protocol="https"))


def test_the_sdk_works_over_https(tls_server, certificate):
    cert, _ = certificate
    verified = RuntimeOptions(ca=str(cert))
    client = sdk(tls_server)
    regions = client.describe_regions_with_options(models.DescribeRegionsRequest(), verified).body
    assert [r.region_id for r in regions.region_models] == ["cn-hangzhou"]

    made = client.create_android_instance_group_with_options(models.CreateAndroidInstanceGroupRequest(
        biz_region_id="cn-hangzhou", image_id="imgc-simandroid140000", instance_group_spec="acp.basic.small",
        number_of_instances=2, instance_group_name="tls"), verified).body
    ids = made.instance_group_infos[0].instance_ids

    def running():
        found = client.describe_android_instances_with_options(
            models.DescribeAndroidInstancesRequest(android_instance_ids=ids), verified).body.instance_model
        return len(found) == 2 and all(i.android_instance_status == "RUNNING" for i in found)
    wait_for(running, what="the phones RUNNING over TLS")

    shot = client.create_screenshot_with_options(
        models.CreateScreenshotRequest(android_instance_id_list=ids[:1]), verified).body
    task_id = shot.tasks[0].task_id

    def finished():
        t = client.describe_tasks_with_options(models.DescribeTasksRequest(task_ids=[task_id]), verified).body.data
        return t and t[0].task_status == "Finished" and t[0]
    task = wait_for(finished, what="the screenshot over TLS")
    url = json.loads(task.result)["Url"]
    assert url.startswith(f"https://{tls_server.endpoint}/"), url
    png = requests.get(url, verify=str(cert), timeout=10)
    assert png.status_code == 200 and png.content[:4] == b"\x89PNG"


def test_plain_http_and_unverified_peers_get_nothing(tls_server):
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"http://{tls_server.endpoint}/healthz", timeout=5)
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"https://{tls_server.endpoint}/healthz", timeout=5)
    # The server is still serving after both.
    assert requests.get(f"https://{tls_server.endpoint}/healthz", verify=False, timeout=5).status_code == 200


def test_a_bad_certificate_stops_the_server_at_start(workdir, tmp_path):
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    r = subprocess.run([str(BINARY), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "d"),
                        "--tls-cert", str(junk), "--tls-key", str(junk)], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "junk.pem" in r.stderr, r.stderr
    half = subprocess.run([str(BINARY), "serve", "--tls-cert", str(junk)], capture_output=True, text=True, timeout=60)
    assert half.returncode == 2 and "--tls-key" in half.stderr


def test_the_console_cookie_is_secure_over_https(tls_server, certificate):
    cert, _ = certificate
    r = requests.post(f"https://{tls_server.endpoint}/console/login", verify=str(cert), allow_redirects=False,
                      data={"access_key_id": tls_server.key[0], "access_key_secret": tls_server.key[1]}, timeout=10)
    assert r.status_code == 303
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" in cookie



@pytest.fixture(scope="module")
def private_ca(workdir):
    """A CA of our own and a certificate for 127.0.0.1 signed by it. rustls (the CLI's TLS), unlike
    OpenSSL, refuses a CA certificate as a server's own, such as the self-signed one above."""
    d = workdir / "ca"
    d.mkdir(exist_ok=True)
    ca_key, ca_cert, key, csr, cert, ext = (d / n for n in ("ca.key", "ca.pem", "key.pem", "req.csr", "cert.pem",
                                                            "ext.cnf"))
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    subprocess.run(["openssl", "req", "-x509", *ec, "-keyout", str(ca_key), "-out", str(ca_cert), "-days", "2",
                    "-subj", "/CN=cloudphone test CA"], check=True, capture_output=True)
    subprocess.run(["openssl", "req", *ec, "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1"],
                   check=True, capture_output=True)
    ext.write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n"
                   "extendedKeyUsage=serverAuth\n")
    subprocess.run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key),
                    "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext)],
                   check=True, capture_output=True)
    return ca_cert, cert, key


@pytest.fixture(scope="module")
def ca_server(workdir, private_ca):
    _, cert, key = private_ca
    s = Server(workdir / "ca-data", extra_args=["--tls-cert", str(cert), "--tls-key", str(key)]).start()
    yield s
    s.stop()


def cloudphone(server, *args, ca=None):
    """The command-line client against the HTTPS server, trusting `ca` when given."""
    env = {"PATH": os.environ["PATH"], "CLOUDPHONE_ENDPOINT": f"https://{server.endpoint}",
           "CLOUDPHONE_ACCESS_KEY_ID": server.key[0], "CLOUDPHONE_ACCESS_KEY_SECRET": server.key[1]}
    extra = ["--ca-file", str(ca)] if ca else []
    return subprocess.run([str(BINARY), *args, *extra], env=env, capture_output=True, text=True, timeout=120)


def test_the_cli_speaks_https_with_a_ca_file(ca_server, private_ca, tmp_path):
    cert, tls_server = private_ca[0], ca_server
    made = cloudphone(tls_server, "groups", "create", "--image", "imgc-simandroid140000", "--name", "tls-cli",
                      "--output", "json", ca=cert)
    assert made.returncode == 0, made.stderr
    phone = json.loads(made.stdout)[0]["InstanceIds"][0]

    def running():
        out = cloudphone(tls_server, "instances", "list", "--output", "json", ca=cert)
        assert out.returncode == 0, out.stderr
        return [i["AndroidInstanceStatus"] for i in json.loads(out.stdout) if i["AndroidInstanceId"] == phone] \
            == ["RUNNING"]
    wait_for(running, what="the phone RUNNING, seen by the CLI over TLS")
    watched = cloudphone(tls_server, "instances", "reboot", phone, "--wait", "--interval-ms", "100", ca=cert)
    assert watched.returncode == 0 and "Finished 1/1 ok" in watched.stdout, (watched.stdout, watched.stderr)

    # The screenshot's download link is https too, checked against the same CA.
    png = tmp_path / "screen.png"
    shot = cloudphone(tls_server, "screenshot", phone, "-o", str(png), ca=cert)
    assert shot.returncode == 0, shot.stderr
    assert png.read_bytes()[:4] == b"\x89PNG"

    src, back = tmp_path / "up.bin", tmp_path / "down.bin"
    src.write_bytes(b"over tls\n" * 1000)
    up = cloudphone(tls_server, "cp", str(src), "oss://tls-cli-bucket/up.bin", ca=cert)
    assert up.returncode == 0, up.stderr
    down = cloudphone(tls_server, "cp", "oss://tls-cli-bucket/up.bin", str(back), ca=cert)
    assert down.returncode == 0, down.stderr
    assert back.read_bytes() == src.read_bytes()

    # The CA file may come from the environment as well.
    env_ca = subprocess.run([str(BINARY), "tasks", "list", "--max-results", "1"], capture_output=True, text=True,
                            timeout=60, env={"PATH": os.environ["PATH"],
                                             "CLOUDPHONE_ENDPOINT": f"https://{tls_server.endpoint}",
                                             "CLOUDPHONE_ACCESS_KEY_ID": tls_server.key[0],
                                             "CLOUDPHONE_ACCESS_KEY_SECRET": tls_server.key[1],
                                             "CLOUDPHONE_CA_FILE": str(cert)})
    assert env_ca.returncode == 0 and env_ca.stdout.startswith("TaskId"), env_ca.stderr

    # And from a profile that `configure --ca-file` wrote.
    env = {"PATH": os.environ["PATH"], "CLOUDPHONE_CONFIG": str(tmp_path / "config.toml")}
    subprocess.run([str(BINARY), "configure", "--profile", "tls", "--endpoint", f"https://{tls_server.endpoint}",
                    "--access-key-id", tls_server.key[0], "--access-key-secret", tls_server.key[1],
                    "--ca-file", str(cert)], env=env, check=True, capture_output=True, timeout=60)
    profiled = subprocess.run([str(BINARY), "images", "list", "--profile", "tls"], env=env, capture_output=True,
                              text=True, timeout=60)
    assert profiled.returncode == 0 and "imgc-simandroid140000" in profiled.stdout, profiled.stderr


def test_the_cli_refuses_an_untrusted_certificate_clearly(ca_server, tls_server, certificate, tmp_path):
    for args in (["tasks", "list"], ["cp", "oss://tls-cli-bucket/none.bin", str(tmp_path / "x")]):
        r = cloudphone(ca_server, *args)
        assert r.returncode == 1, (args, r.stdout, r.stderr)
        assert "is not trusted" in r.stderr and "UnknownIssuer" in r.stderr and "--ca-file" in r.stderr, r.stderr
        assert "panicked" not in r.stderr and "ERROR" not in r.stderr, r.stderr
    # A self-signed CA certificate served as the server's own is refused, saying so.
    own = cloudphone(tls_server, "tasks", "list", ca=certificate[0])
    assert own.returncode == 1 and "is a CA certificate" in own.stderr, own.stderr
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    bad = cloudphone(ca_server, "tasks", "list", ca=junk)
    assert bad.returncode == 1 and "junk.pem" in bad.stderr, bad.stderr
