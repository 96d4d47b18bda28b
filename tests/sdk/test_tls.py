"""HTTPS: `serve --tls-cert --tls-key` with a certificate made here for 127.0.0.1; the official
SDK calls it over TLS, verifying against that certificate, and follows a batch; the links in task
results are https; plain HTTP and an unverified peer get nothing."""

import json
import subprocess

import pytest
import requests
from alibabacloud_eds_aic20230930 import models
from alibabacloud_eds_aic20230930.client import Client
from alibabacloud_tea_openapi import models as open_api_models
from alibabacloud_tea_util.models import RuntimeOptions

from conftest import BINARY, Server, wait_for


@pytest.fixture(scope="module")
def certificate(workdir):
    d = workdir / "tls"
    d.mkdir(exist_ok=True)
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


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
