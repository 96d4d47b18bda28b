"""The README's example path: create phones, reboot them, follow the batch with DescribeTasks."""

from alibabacloud_eds_aic20230930 import models

from conftest import create_group, tasks_of, wait_batch


def test_reboot_a_group_and_follow_it(client):
    _, ids = create_group(client, 2)
    r = client.reboot_android_instances_in_group(models.RebootAndroidInstancesInGroupRequest(android_instance_ids=ids))
    parent = r.body.tasks.parent_task_id
    children = {c.instance_id: c.task_id for c in r.body.tasks.child_tasks}
    assert set(children) == set(ids)
    # Visible the moment the call returned, under the call's RequestId.
    seen = tasks_of(client, invoke_id=r.body.request_id)
    assert {t.task_id for t in seen} == {parent, *children.values()}
    batch = wait_batch(client, r.body.request_id)
    assert batch.task_id == parent
    assert batch.task_status == "Finished"
    assert (batch.total_child_count, batch.success_child_count, batch.failed_child_count, batch.running_child_count) == (2, 2, 0, 0)
    for t in tasks_of(client, parent_task_id=parent):
        assert t.task_status == "Finished"
        assert t.level == 2
        assert t.instance_status == "RUNNING"
        assert t.result == '{"Success":true}'
