"""Webhooks through the SDK's generic call path: an account registers a URL and a secret; each
batch that ends is POSTed there, signed with HMAC-SHA256, retried with backoff until the
receiver takes it, and every delivery and its attempts are visible."""

import hashlib
import hmac
import http.server
import json
import threading

import pytest
from alibabacloud_eds_aic20230930 import models

from conftest import Server, api_error, call, create_group, free_port, wait_batch, wait_for

SECRET = "webhook-secret-0123456789"


@pytest.fixture(scope="module")
def client(workdir):
    s = Server(workdir / "webhooks", sim_delay_ms=30, extra_args=["--webhook-retry-ms", "150", "--webhook-allow-private"]).start()
    yield s.client()
    s.stop()


class Receiver:
    """A real HTTP receiver on loopback that refuses the first `fail` POSTs with a 500."""

    def __init__(self, fail=0):
        self.fail = fail
        self.posts = []
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                with outer.lock:
                    refused = len(outer.posts) < outer.fail
                    outer.posts.append({"headers": {k.lower(): v for k, v in self.headers.items()}, "body": body, "refused": refused})
                self.send_response(500 if refused else 204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def accepted(self):
        with self.lock:
            return [p for p in self.posts if not p["refused"]]

    def close(self):
        self.server.shutdown()


def valid_signature(post, secret=SECRET):
    parts = dict(p.split("=", 1) for p in post["headers"]["x-cloudphone-signature"].split(","))
    expected = hmac.new(secret.encode(), f"{parts['t']}.{post['body']}".encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(parts["v1"], expected)


def deliveries(client, **query):
    return call(client, "DescribeWebhookDeliveries", query)["Deliveries"]


def test_a_receiver_that_fails_twice_then_receives_the_event_once(client):
    receiver = Receiver(fail=2)
    try:
        hook = call(client, "CreateWebhook", {"Url": receiver.url, "Secret": SECRET})["WebhookId"]
        _, ids = create_group(client, 2, name="hooked")
        r = client.reboot_android_instances_in_group(
            models.RebootAndroidInstancesInGroupRequest(android_instance_ids=ids)).body
        batch = wait_batch(client, r.request_id)
        (d,) = wait_for(lambda: [d for d in deliveries(client, WebhookId=hook) if d["Status"] == "Delivered"],
                        timeout=30, what="the delivery to succeed")
        assert (d["TaskId"], d["Attempts"], d["LastHttpStatus"]) == (batch.task_id, 3, 204)
        assert len(receiver.posts) == 3 and len(receiver.accepted()) == 1
        ids_sent = {p["headers"]["x-cloudphone-delivery"] for p in receiver.posts}
        assert ids_sent == {d["DeliveryId"]}, "the same delivery each time, so a receiver can drop repeats"
        assert [p["headers"]["x-cloudphone-attempt"] for p in receiver.posts] == ["1", "2", "3"]
        assert all(valid_signature(p) for p in receiver.posts)
        assert not valid_signature(receiver.posts[0], secret="another-secret-0123")
        event = json.loads(receiver.accepted()[0]["body"])
        assert event == {"Event": "BatchEnded", "TaskId": batch.task_id, "InvokeId": r.request_id,
                         "TaskType": "RebootInstance", "TaskStatus": "Finished", "TotalChildCount": 2,
                         "SuccessChildCount": 2, "FailedChildCount": 0, "SkippedChildCount": 0,
                         "FinishTimeMs": event["FinishTimeMs"]}
        # Nothing more arrives for that batch.
        stop = client.stop_android_instance(models.StopAndroidInstanceRequest(android_instance_ids=ids)).body
        wait_batch(client, stop.request_id)
        wait_for(lambda: len(receiver.accepted()) == 2, what="the second batch's event")
        assert [json.loads(p["body"])["TaskId"] for p in receiver.accepted()].count(batch.task_id) == 1
        second = [d for d in deliveries(client, WebhookId=hook) if d["TaskId"] != batch.task_id]
        assert [(x["Status"], x["Attempts"]) for x in second] == [("Delivered", 1)]
    finally:
        call(client, "DeleteWebhook", {"WebhookId": hook})
        receiver.close()


def test_webhooks_are_listed_without_their_secret_and_checked(client):
    made = call(client, "CreateWebhook", {"Url": "https://example.invalid/x", "Secret": SECRET})["WebhookId"]
    listed = call(client, "DescribeWebhooks")["Webhooks"]
    assert [w["Url"] for w in listed if w["WebhookId"] == made] == ["https://example.invalid/x"]
    assert SECRET not in json.dumps(listed)
    for query, code in [({"Url": "ftp://x/y", "Secret": SECRET}, "InvalidParameter.Url"),
                        ({"Url": "not a url", "Secret": SECRET}, "InvalidParameter.Url"),
                        ({"Url": "http://x/y", "Secret": "short"}, "InvalidParameter.Secret"),
                        ({"Secret": SECRET}, "MissingParameter.Url")]:
        assert api_error(call, client, "CreateWebhook", query).code == code, query
    e = api_error(call, client, "DeleteWebhook", {"WebhookId": "wh-nosuchhook"})
    assert (e.status_code, e.code) == (404, "InvalidWebhookId.NotFound")
    call(client, "DeleteWebhook", {"WebhookId": made})
    assert made not in [w["WebhookId"] for w in call(client, "DescribeWebhooks")["Webhooks"]]
    # At most ten per account.
    made = [call(client, "CreateWebhook", {"Url": f"http://127.0.0.1:9/{n}", "Secret": SECRET})["WebhookId"]
            for n in range(10 - len(call(client, "DescribeWebhooks")["Webhooks"]))]
    e = api_error(call, client, "CreateWebhook", {"Url": "http://127.0.0.1:9/x", "Secret": SECRET})
    assert e.code == "QuotaExceeded.Webhooks"
    for m in made:
        call(client, "DeleteWebhook", {"WebhookId": m})


def test_by_default_a_webhook_cannot_point_into_the_server_s_network(workdir):
    s = Server(workdir / "webhooks-public-only", sim_delay_ms=30).start()
    try:
        c = s.client()
        for url in ["http://127.0.0.1:8080/hook", "http://localhost/hook", "http://10.0.0.7/hook",
                    "http://169.254.169.254/latest/meta-data", "http://[::1]:9/hook"]:
            e = api_error(call, c, "CreateWebhook", {"Url": url, "Secret": SECRET})
            assert e.code == "InvalidParameter.Url", url
        assert call(c, "DescribeWebhooks")["Webhooks"] == []
    finally:
        s.stop()
