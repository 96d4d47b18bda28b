"""/metrics, /healthz and /readyz on the API's port: what a Prometheus scrape sees after a
batch, through the real server. /metrics needs its bearer token (`--metrics-token`); where else
it is served, and where not: test_listeners.py."""

import re

import pytest
import requests
from alibabacloud_eds_aic20230930 import models

from conftest import Server, api_error, create_group, wait_batch, wait_for

TOKEN = "scrape-token-for-tests"


@pytest.fixture(scope="module")
def server(workdir):
    s = Server(workdir / "metrics", extra_args=["--metrics-token", TOKEN]).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def client(server):
    return server.client()


def scrape(server):
    r = requests.get(f"http://{server.endpoint}/metrics", headers={"Authorization": f"Bearer {TOKEN}"},
                     timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return r.text


def value(text, name, **labels):
    """The sample of `name` whose labels include `labels`, or None."""
    for line in text.splitlines():
        m = re.match(r"^([a-z_]+)(?:\{(.*)\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            return float(m.group(3))
    return None


def test_a_scrape_after_a_batch_shows_its_counts(client, server):
    _, ids = create_group(client, 3, name="scraped")
    before = scrape(server)
    finished_before = value(before, "cloudphone_tasks", type="RebootInstance", level="instance", status="Finished") or 0
    r = client.reboot_android_instances_in_group(
        models.RebootAndroidInstancesInGroupRequest(android_instance_ids=ids)).body
    assert wait_batch(client, r.request_id).task_status == "Finished"
    api_error(client.describe_tasks, models.DescribeTasksRequest(task_statuses=["Sleeping"]))

    def counted():
        text = scrape(server)
        done = value(text, "cloudphone_tasks", type="RebootInstance", level="instance", status="Finished") or 0
        return text if done >= finished_before + 3 else None
    text = wait_for(counted, timeout=15, interval=0.5, what="the batch's children counted")
    assert value(text, "cloudphone_tasks", type="RebootInstance", level="batch", status="Finished") >= 1
    assert value(text, "cloudphone_queue_depth") is not None
    assert value(text, "cloudphone_requests_total", action="RebootAndroidInstancesInGroup", code="Success") >= 1
    assert value(text, "cloudphone_requests_total", action="DescribeTasks",
                 code="InvalidParameter.TaskStatuses") >= 1
    assert value(text, "cloudphone_request_duration_seconds_count", action="DescribeTasks") >= 1
    assert value(text, "cloudphone_claim_duration_seconds_count") >= 1
    assert value(text, "cloudphone_task_run_seconds_count", type="RebootInstance") >= 3
    # Every name is ours.
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}
    assert all(n.startswith("cloudphone_") for n in names), names


def test_health_and_readiness(server):
    for path, body in (("/healthz", "ok\n"), ("/readyz", "ready\n")):
        r = requests.get(f"http://{server.endpoint}{path}", timeout=10)
        assert (r.status_code, r.text) == (200, body)
