"""Durability: SIGKILL the server in the middle of a batch of 250 instance tasks, start it again
on the same data dir, and every task still reaches a terminal state; none is lost, and none that
had finished runs again."""

from alibabacloud_eds_aic20230930 import models

from conftest import Server, tasks_of, wait_for, describe_instances

PHONES = 250


def create_fleet(client):
    ids = []
    for n in (100, 100, PHONES - 200):
        r = client.create_android_instance_group(models.CreateAndroidInstanceGroupRequest(
            biz_region_id="cn-hangzhou", image_id="imgc-simandroid120000",
            instance_group_spec="acp.basic.small", number_of_instances=n))
        ids += r.body.instance_group_infos[0].instance_ids
    return ids


def all_running(client, ids):
    found = {}
    for start in range(0, len(ids), 100):
        found.update(describe_instances(client, ids[start:start + 100]))
    return len(found) == len(ids) and all(m.android_instance_status == "RUNNING" for m in found.values())


def test_sigkill_mid_batch_loses_nothing(workdir):
    data = workdir / "crash"
    server = Server(data, sim_delay_ms=300, extra_args=["--concurrency", "32"]).start()
    try:
        client = server.client()
        ids = create_fleet(client)
        wait_for(lambda: all_running(client, ids), timeout=60, what="fleet RUNNING")

        r = client.reboot_android_instances_in_group(
            models.RebootAndroidInstancesInGroupRequest(android_instance_ids=ids))
        parent = r.body.tasks.parent_task_id
        assert len(r.body.tasks.child_tasks) == PHONES

        # Kill once part of the batch is done and part is not.
        def midway():
            children = tasks_of(client, parent_task_id=parent)
            done = [t for t in children if t.task_status == "Finished"]
            return children if 0 < len(done) < PHONES // 2 else None
        before = wait_for(midway, timeout=30, interval=0.02, what="a batch in the middle")
        server.kill()
    finally:
        server.stop()

    finished_before = {t.task_id: t.finish_time for t in before if t.task_status == "Finished"}
    unfinished_before = [t for t in before if t.task_status in ("Waiting", "Processing")]
    assert finished_before and unfinished_before

    again = Server(data, sim_delay_ms=300, extra_args=["--concurrency", "32"]).start()
    try:
        client = again.client()

        def batch_done():
            b = tasks_of(client, task_ids=[parent])[0]
            return b if b.task_status not in ("Waiting", "Processing") else None
        batch = wait_for(batch_done, timeout=90, interval=0.2, what="the batch to finish after restart")
        assert batch.task_status == "Finished"
        assert (batch.total_child_count, batch.success_child_count, batch.failed_child_count,
                batch.running_child_count) == (PHONES, PHONES, 0, 0)

        children = tasks_of(client, parent_task_id=parent)
        assert len(children) == PHONES
        assert len({t.task_id for t in children}) == PHONES
        assert {t.resource_id for t in children} == set(ids)
        assert all(t.task_status == "Finished" for t in children)
        # What had finished before the crash was not run again.
        for t in children:
            if t.task_id in finished_before:
                assert t.finish_time == finished_before[t.task_id]
        assert all_running(client, ids), "no phone is left REBOOTING"
    finally:
        again.stop()


def test_sigterm_and_sigint_stop_the_server_cleanly(workdir):
    import signal
    for n, sig in enumerate((signal.SIGTERM, signal.SIGINT)):
        server = Server(workdir / f"graceful-{n}").start()
        server.client().describe_regions(models.DescribeRegionsRequest())
        server.proc.send_signal(sig)
        assert server.proc.wait(timeout=20) == 0
        # The data dir is free again: a new server can take it.
        again = Server(workdir / f"graceful-{n}").start()
        again.stop()
        assert again.proc.returncode == 0
