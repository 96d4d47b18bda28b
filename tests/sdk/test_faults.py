"""Fault injection with a probability: about that share of the matching operations fail, with
the injected code, and the rest succeed."""

from alibabacloud_eds_aic20230930 import models

from conftest import clear_faults, create_group, call, tasks_of, wait_batch


def test_a_fault_with_a_probability_fails_some_children(client):
    _, ids = create_group(client, 30, name="prob")
    call(client, "InjectSimulatedFault", {"TaskType": "RebootInstance", "ErrorCode": "InstanceUnreachable",
                                          "Probability": 50})
    try:
        r = client.reboot_android_instances_in_group(
            models.RebootAndroidInstancesInGroupRequest(android_instance_ids=ids)).body
        batch = wait_batch(client, r.request_id)
    finally:
        clear_faults(client)
    # Both outcomes at 50% over 30 phones: all or none would happen about once in 500 million runs.
    assert batch.task_status == "PartFinished"
    assert 0 < batch.failed_child_count < 30
    assert batch.failed_child_count + batch.success_child_count == 30
    failed = [t for t in tasks_of(client, parent_task_id=r.tasks.parent_task_id) if t.task_status == "Failed"]
    assert len(failed) == batch.failed_child_count
    assert {t.error_code for t in failed} == {"InstanceUnreachable"}
