"""Throttling, quotas and request bounds as the official SDK meets them: a key over its rate gets
the SDK's ThrottlingException with the server's retry-after; another key is not slowed; an
account at its instance quota is refused; an over-long URI is refused with a vendor code."""

import time

import pytest
from alibabacloud_eds_aic20230930 import models
from alibabacloud_tea_openapi.exceptions import ThrottlingException

from conftest import Server, api_error, error_code, signed_request


@pytest.fixture(scope="module")
def slow_server(workdir):
    s = Server(workdir / "throttled", extra_args=["--throttle-rps", "4", "--throttle-burst", "4",
                                                  "--max-uri-bytes", "4096", "--instance-quota", "3"]).start()
    yield s
    s.stop()


def regions(client):
    return client.describe_regions(models.DescribeRegionsRequest())


def test_a_key_over_its_rate_gets_the_sdk_throttling_exception(slow_server):
    client = slow_server.client()
    other = slow_server.client(key=slow_server.create_key("throttle-other"))
    refused = None
    for _ in range(20):
        try:
            regions(client)
        except ThrottlingException as e:
            refused = e
            break
    assert refused is not None, "20 calls at once were never throttled at 4 a second"
    assert refused.code == "Throttling.User" and refused.status_code == 400
    assert 1 <= refused.retry_after <= 1000, refused.retry_after
    assert refused.request_id
    # Another key has its own bucket.
    regions(other)
    # Waiting as long as told is enough.
    time.sleep(refused.retry_after / 1000 + 0.05)
    regions(client)


def test_a_throttled_call_changes_nothing(slow_server):
    client = slow_server.client(key=slow_server.create_key("throttle-creator"))
    with pytest.raises(ThrottlingException):
        for _ in range(20):
            regions(client)
    with pytest.raises(ThrottlingException):
        client.create_android_instance_group(models.CreateAndroidInstanceGroupRequest(
            biz_region_id="cn-hangzhou", image_id="imgc-simandroid140000",
            instance_group_spec="acp.basic.small", number_of_instances=1,
            instance_group_name="thr-refused"))
    time.sleep(1.1)
    groups = client.describe_android_instance_groups(
        models.DescribeAndroidInstanceGroupsRequest(instance_group_name="thr-refused")).body
    assert groups.instance_group_model == []


def test_an_over_long_uri_is_refused(slow_server):
    time.sleep(1.1)
    r = signed_request(slow_server, "DescribeTasks", query=[("Param", "x" * 5000)])
    assert error_code(r) == (414, "RequestURITooLong")


def test_an_account_at_its_instance_quota_is_refused(slow_server):
    time.sleep(1.1)
    client = slow_server.client(key=slow_server.create_key("quota-account"))

    def order(n, name):
        return client.create_android_instance_group(models.CreateAndroidInstanceGroupRequest(
            biz_region_id="cn-hangzhou", image_id="imgc-simandroid140000",
            instance_group_spec="acp.basic.small", number_of_instances=n, instance_group_name=name))
    order(2, "quota-a")
    e = api_error(order, 2, "quota-b")
    assert e.code == "QuotaExceeded.Instances" and e.status_code == 400
    assert "at most 3 instances" in e.message and "has 2" in e.message
    groups = client.describe_android_instance_groups(
        models.DescribeAndroidInstanceGroupsRequest(instance_group_name="quota-b")).body
    assert groups.instance_group_model == []
    time.sleep(0.6)  # this server also allows only 4 calls a second
    order(1, "quota-c")
    assert api_error(order, 1, "quota-d").code == "QuotaExceeded.Instances"
