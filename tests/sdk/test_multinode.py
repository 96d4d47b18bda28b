"""Several nodes over one PostgreSQL database (docs/design.md §1, §5), through the official SDK:

- two `cloudphone serve` processes share a database and a data dir; a batch of 1,000 instance
  tasks is submitted to node A and followed through node B; A is SIGKILLed in the middle; every
  task ends Finished, the counters are exact, and the simulated fleet's executions ledger shows
  no task attempt run twice (a task runs again only where the killed node held it);
- NextTokens and download links minted by one node work on the other (objects in S3 when
  CLOUDPHONE_TEST_S3_ENDPOINT names a server; a link answers 302 to S3 on a node with presign);
- with objects in S3, nodes with separate data dirs share every object and the root key, and
  (`--sim-state shared`) the simulated phones' files, apps and state;
- PostgreSQL stopped under load: the node answers 503 `ServiceUnavailable` within seconds (no
  hang), and once PostgreSQL is back it recovers by itself and every task ends.

These tests always run on PostgreSQL (CLOUDPHONE_TEST_DATABASE_URL must name a cluster; the
outage test starts a private one of its own with scripts/pg-cluster)."""

import collections
import concurrent.futures
import json
import os
import shutil
import tempfile
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

import pytest
import requests
from alibabacloud_eds_aic20230930 import models
from alibabacloud_tea_openapi.exceptions import ClientException, ServerException

from conftest import (ADMIN_URL, BINARY, ROOT, S3_ENDPOINT, Server, describe_instances, fresh_database,
                      s3_bucket, s3_object_store, tasks_of, wait_for)

PHONES = 1000
KEY = ("testid", "testsecret")
LEASE_MS = 3000

if not ADMIN_URL:
    raise RuntimeError("the multi-node tests need CLOUDPHONE_TEST_DATABASE_URL "
                       "(start a cluster with scripts/pg-cluster start DIR)")


def node(data, database, concurrency=32, delay=250, object_store=None, key=KEY):
    return Server(data, sim_delay_ms=delay, database=database, object_store=object_store, key=key,
                  extra_args=["--concurrency", str(concurrency), "--lease-ms", str(LEASE_MS),
                              "--sim-record-executions"])


def create_fleet(client, phones):
    ids = []
    for start in range(0, phones, 100):
        r = client.create_android_instance_group(models.CreateAndroidInstanceGroupRequest(
            biz_region_id="cn-hangzhou", image_id="imgc-simandroid140000",
            instance_group_spec="acp.basic.small", number_of_instances=min(100, phones - start)))
        ids += r.body.instance_group_infos[0].instance_ids
    return ids


def statuses(client, ids):
    found = {}
    for start in range(0, len(ids), 100):
        found.update(describe_instances(client, ids[start:start + 100]))
    return {i: m.android_instance_status for i, m in found.items()}


def all_running(client, ids):
    s = statuses(client, ids)
    return len(s) == len(ids) and set(s.values()) == {"RUNNING"}


def shell(client, phone, command):
    """RunCommand on one phone, waited for: its output (it must finish)."""
    r = client.run_command(models.RunCommandRequest(instance_ids=[phone], command_content=command)).body
    wait_for(lambda: tasks_of(client, invoke_id=r.invoke_id, level=2)[0].task_status
             in ("Finished", "Failed"), timeout=60, what="RunCommand")
    (t,) = tasks_of(client, invoke_id=r.invoke_id, level=2)
    assert t.task_status == "Finished", (t.error_code, t.error_msg)
    return json.loads(t.result)["Output"]


def shared_sim_nodes(workdir, names, extra_args=lambda n: []):
    """Nodes (not started) over one fresh database and bucket with data dirs apart: their
    simulated phones are shared through the two (the default there). `extra_args(n)`: the
    n-th node's own arguments."""
    database = fresh_database()
    objects = s3_object_store(s3_bucket())
    return [Server(workdir / name, sim_delay_ms=20, database=database, object_store=objects, key=KEY,
                   extra_args=["--lease-ms", str(LEASE_MS), *extra_args(n)])
            for n, name in enumerate(names)]


def running_phone(client):
    """A new simulated phone, waited for until it is RUNNING."""
    (p,) = create_fleet(client, 1)
    wait_for(lambda: all_running(client, [p]), timeout=60, what="the phone RUNNING")
    return p


def ledger(data):
    """The sim's executions: (task id, attempt, pid) per line."""
    out = []
    for line in (data / "sim" / "executions.log").read_text().splitlines():
        task, attempt, _instance, _type, outcome, pid = line.split()
        assert outcome == "ok", line
        out.append((task, int(attempt), int(pid)))
    return out


def test_two_nodes_share_one_database_and_survive_a_sigkill(workdir):
    data = workdir / "two-nodes"
    database = fresh_database()
    a = node(data, database).start()
    b = node(data, database).start()
    try:
        ca, cb = a.client(), b.client()
        ids = create_fleet(ca, PHONES)
        assert len(ids) == PHONES
        wait_for(lambda: all_running(cb, ids), timeout=120, interval=0.5, what="fleet RUNNING")

        # Both nodes executed the creations: any node executes any task.
        creators = collections.Counter(pid for _, _, pid in ledger(data))
        assert set(creators) == {a.proc.pid, b.proc.pid}, creators

        r = ca.reboot_android_instances_in_group(
            models.RebootAndroidInstancesInGroupRequest(android_instance_ids=ids))
        parent = r.body.tasks.parent_task_id
        children = {c.task_id for c in r.body.tasks.child_tasks}
        assert len(children) == PHONES

        def midway():
            batch = tasks_of(cb, task_ids=[parent])[0]
            return batch if 200 <= batch.success_child_count <= 600 else None
        wait_for(midway, timeout=60, interval=0.05, what="the batch in the middle")
        a.kill()

        def batch_done():
            batch = tasks_of(cb, task_ids=[parent])[0]
            return batch if batch.task_status not in ("Waiting", "Processing") else None
        batch = wait_for(batch_done, timeout=180, interval=0.5, what="the batch to finish on node B")
        assert batch.task_status == "Finished"
        assert (batch.total_child_count, batch.success_child_count, batch.failed_child_count,
                batch.running_child_count) == (PHONES, PHONES, 0, 0)
        listed = tasks_of(cb, parent_task_id=parent)
        assert {t.task_id for t in listed} == children
        assert all(t.task_status == "Finished" for t in listed)
        assert all_running(cb, ids), "no phone is left REBOOTING"

        runs = [(task, attempt, pid) for task, attempt, pid in ledger(data) if task in children]
        per_attempt = collections.Counter((task, attempt) for task, attempt, _ in runs)
        assert max(per_attempt.values()) == 1, "a task attempt ran twice"
        per_task = collections.defaultdict(list)
        for task, attempt, pid in runs:
            per_task[task].append((attempt, pid))
        assert set(per_task) == children, "every task ran"
        # A task ran again only when node A died holding it: its earlier runs were all on A, and
        # A held at most --concurrency tasks at once.
        again = {t: r for t, r in per_task.items() if len(r) > 1}
        for task, attempts in again.items():
            last = max(attempts)
            assert all(pid == a.proc.pid for att, pid in attempts if att != last[0]), (task, attempts)
        assert len(again) <= 32
        by_node = collections.Counter(pid for _, _, pid in runs)
        assert by_node[a.proc.pid] > 0 and by_node[b.proc.pid] > 0, by_node
        print(f"1,000 reboots: {by_node[a.proc.pid]} ran on A before its SIGKILL, "
              f"{by_node[b.proc.pid]} on B; {len(again)} re-run after A died")
    finally:
        a.stop()
        b.stop()


def test_tokens_and_links_from_one_node_work_on_another(workdir):
    data = workdir / "shared-secrets"
    database = fresh_database()
    # The nodes share the data dir for the simulated phones only: the objects are in a bucket.
    bucket = s3_bucket() if S3_ENDPOINT else None
    objects = s3_object_store(bucket) if bucket else None
    a = node(data, database, delay=20, object_store=objects).start()
    b = node(data, database, delay=20, object_store=objects).start()
    presigning = None
    try:
        ca, cb = a.client(), b.client()
        ids = create_fleet(ca, 5)
        wait_for(lambda: all_running(cb, ids), timeout=60, what="fleet RUNNING")

        # A NextToken minted by A pages on through B.
        r = ca.reboot_android_instances_in_group(
            models.RebootAndroidInstancesInGroupRequest(android_instance_ids=ids))
        assert len(r.body.tasks.child_tasks) == len(ids)
        first = ca.describe_tasks(models.DescribeTasksRequest(max_results=2))
        assert first.body.next_token
        rest = cb.describe_tasks(models.DescribeTasksRequest(max_results=100, next_token=first.body.next_token))
        seen = [t.task_id for t in first.body.data] + [t.task_id for t in rest.body.data]
        everything = [t.task_id for t in tasks_of(ca)]
        assert seen == everything

        # A screenshot's link, whichever node made it, downloads from either node.
        r = ca.create_screenshot(models.CreateScreenshotRequest(android_instance_id_list=ids[:1]))
        task_id = r.body.tasks[0].task_id
        task = wait_for(lambda: [t for t in tasks_of(cb, task_ids=[task_id]) if t.task_status == "Finished"],
                        what="the screenshot")[0]
        link = json.loads(task.result)["Url"]
        assert link.startswith("http://"), link
        for server in (a, b):
            url = urllib.parse.urlsplit(link)._replace(netloc=server.endpoint).geturl()
            got = requests.get(url, timeout=10)
            assert got.status_code == 200, (server.endpoint, got.status_code, got.text[:200])
            assert got.content.startswith(b"\x89PNG")
        if bucket:
            assert not (data / "objects" / "objects").exists(), "the objects are in the bucket"
            # A node with presign answers a valid link with a redirect to the S3 service, and
            # an altered one with 403 as before.
            presigning = node(workdir / "shared-secrets-presign", database, delay=20,
                              object_store=s3_object_store(bucket, presign="true")).start()
            url = urllib.parse.urlsplit(link)._replace(netloc=presigning.endpoint).geturl()
            got = requests.get(url, timeout=10, allow_redirects=False)
            assert got.status_code == 302, (got.status_code, got.text[:200])
            assert got.headers["Location"].startswith(S3_ENDPOINT + "/"), got.headers["Location"]
            assert requests.get(got.headers["Location"], timeout=10).content.startswith(b"\x89PNG")
            altered = url.replace("Signature=", "Signature=0")
            assert requests.get(altered, timeout=10, allow_redirects=False).status_code == 403
    finally:
        a.stop()
        b.stop()
        if presigning:
            presigning.stop()


def test_nodes_without_a_shared_directory_share_objects_and_the_root_key(workdir, tmp_path):
    """Objects in S3: two nodes over one database with a data dir each (no shared file system
    for objects or keys). The second node adopts the root key the first one created; an object
    put through one node is read back through the other."""
    database = fresh_database()
    objects = s3_object_store(s3_bucket())
    a = node(workdir / "apart-a", database, delay=20, object_store=objects, key=None).start()
    b = node(workdir / "apart-b", database, delay=20, object_store=objects, key=None).start()
    try:
        key_a = json.loads((a.data_dir / "root-access-key.json").read_text())
        key_b = json.loads((b.data_dir / "root-access-key.json").read_text())
        assert key_a == key_b, "the second node adopted the first node's root key"
        key = (key_a["AccessKeyId"], key_a["AccessKeySecret"])
        a.key = b.key = key
        for server in (a, b):
            server.client().describe_regions(models.DescribeRegionsRequest())
        # Restarted, B keeps the key (its own file now).
        b.stop()
        b.start()
        assert json.loads((b.data_dir / "root-access-key.json").read_text()) == key_a

        env = dict(os.environ, CLOUDPHONE_ACCESS_KEY_ID=key[0], CLOUDPHONE_ACCESS_KEY_SECRET=key[1])
        src = tmp_path / "payload.bin"
        src.write_bytes(os.urandom(3 << 20))

        def cp(server, frm, to):
            return subprocess.run([str(BINARY), "cp", str(frm), str(to), "--endpoint",
                                   f"http://{server.endpoint}"], env=env, capture_output=True, check=True)
        cp(a, src, "oss://apart-bucket/dir/payload.bin")
        back = tmp_path / "back.bin"
        cp(b, "oss://apart-bucket/dir/payload.bin", back)
        assert back.read_bytes() == src.read_bytes()
        for server in (a, b):
            assert not (server.data_dir / "objects" / "objects").exists()
    finally:
        a.stop()
        b.stop()


def test_simulated_phones_without_a_shared_directory(workdir, tmp_path):
    """`--sim-state shared`: two nodes with a data dir each share the simulated phones through
    the database and S3 (design §9). A file written and an app installed by tasks run on A are
    seen by tasks run on B (A stopped, so B runs them); what B writes is seen by A restarted
    (its stale copy brought up to date)."""
    from test_apps import upload_app
    from test_files import put, send
    database = fresh_database()
    objects = s3_object_store(s3_bucket())

    def sim_node(name):
        return Server(workdir / name, sim_delay_ms=20, database=database, object_store=objects,
                      key=KEY, extra_args=["--lease-ms", str(LEASE_MS), "--sim-state", "shared"])

    def send_text(server, client, name, text, dest):
        r = send(client, ids, put(server, tmp_path, name, text.encode()), dest)
        wait_for(lambda: {t.task_status for t in tasks_of(client, invoke_id=r.request_id, level=2)}
                 == {"Finished"}, timeout=60, what="SendFile Finished")

    a, b = sim_node("sim-a"), sim_node("sim-b")
    a.start()
    try:
        ca = a.client()
        ids = create_fleet(ca, 2)
        wait_for(lambda: all_running(ca, ids), timeout=60, what="phones RUNNING")
        send_text(a, ca, "f", "written-on-a\n", "/sdcard/")
        app_id = upload_app(ca, a, tmp_path, "com.example.shared")
        r = ca.install_app(models.InstallAppRequest(app_id_list=[str(app_id)], instance_id_list=ids)).body
        wait_for(lambda: {t.task_status for t in tasks_of(ca, invoke_id=r.request_id, level=2)} == {"Finished"},
                 timeout=60, what="InstallApp Finished")
    finally:
        a.stop()
    assert not (b.data_dir / "sim").exists()
    b.start()
    try:
        cb = b.client()
        for i in ids:
            assert shell(cb, i, "cat /sdcard/f") == "written-on-a\n"
            assert "package:com.example.shared" in shell(cb, i, "pm list packages -3").split()
            shell(cb, i, "mkdir -p /sdcard/from-b; rm -r /sdcard/Music")
        send_text(b, cb, "f", "written-on-b\n", "/sdcard/")
        assert (b.data_dir / "sim" / ids[0] / "data" / "sdcard" / "f").is_file()
    finally:
        b.stop()
    a.start()
    try:
        ca = a.client()
        for i in ids:
            assert shell(ca, i, "cat /sdcard/f") == "written-on-b\n"
            assert shell(ca, i, "ls /sdcard").split() == sorted(
                ["DCIM", "Documents", "Download", "Movies", "Pictures", "f", "from-b"])
        # Both nodes at once: each task runs where it is claimed, on the phone's latest files.
        b.start()
        cb = b.client()
        for n in range(4):
            client = (ca, cb)[n % 2]
            for i in ids:
                shell(client, i, f"touch /sdcard/Documents/t{n}")
        for i in ids:
            assert shell(cb, i, "ls /sdcard/Documents").split() == ["t0", "t1", "t2", "t3"]
    finally:
        a.stop()
        b.stop()


def test_adb_sessions_on_shared_simulated_phones_reach_the_other_node(workdir, tmp_path):
    """`--sim-state shared` and the ADB gateway: what `adb push` and `adb shell` do through one
    node's gateway is published as each answers, so the same phone opened through the other
    node's gateway, and its tasks, see it at once (both nodes up, data dirs apart)."""
    from conftest import free_port_range
    from test_adb_gateway import StockAdb, endpoint
    low, high = free_port_range(4)
    # Two loopback addresses: both nodes open the same port range, as behind a balancer.
    a, b = shared_sim_nodes(workdir, ["adbsim-a", "adbsim-b"], lambda n: [
        "--adb-ports", f"{low}-{high}", "--adb-listen", f"127.0.0.{n + 1}"])
    user = StockAdb()
    try:
        a.start()
        b.start()
        ca, cb = a.client(), b.client()
        p = running_phone(ca)
        port = endpoint(ca, p).rsplit(":", 1)[1]
        via_a, via_b = f"127.0.0.1:{port}", f"127.0.0.2:{port}"
        for serial in (via_a, via_b):
            said, state = user.connect(serial)
            assert state == "device", said
        local = tmp_path / "pushed.txt"
        local.write_text("pushed-through-a\n")
        pushed = user.run("-s", via_a, "push", str(local), "/sdcard/Download/pushed.txt")
        assert pushed.returncode == 0, pushed.stderr
        said = user.shell(via_a, "mkdir /sdcard/Documents/from-a")
        assert said[2] == 0, said
        # The other node's gateway serves the phone's latest files.
        out, err, code = user.shell(via_b, "cat /sdcard/Download/pushed.txt; ls /sdcard/Documents")
        assert (out, code) == ("pushed-through-a\nfrom-a\n", 0), err
        # And the other way, with the tasks of both nodes.
        local.write_text("pushed-through-b\n")
        pushed = user.run("-s", via_b, "push", str(local), "/sdcard/Documents/b.txt")
        assert pushed.returncode == 0, pushed.stderr
        said = user.shell(via_b, "rm -r /sdcard/Documents/from-a")
        assert said[2] == 0, said
        pulled = tmp_path / "b.txt"
        assert user.run("-s", via_a, "pull", "/sdcard/Documents/b.txt", str(pulled)).returncode == 0
        assert pulled.read_text() == "pushed-through-b\n"
        # A file larger than one request's blob (8 MiB: the multipart path) round-trips whole.
        big = tmp_path / "big.bin"
        big.write_bytes(os.urandom(12 << 20))
        assert user.run("-s", via_a, "push", str(big), "/sdcard/Download/big.bin").returncode == 0
        back = tmp_path / "big-back.bin"
        assert user.run("-s", via_b, "pull", "/sdcard/Download/big.bin", str(back)).returncode == 0
        assert back.read_bytes() == big.read_bytes()
        for client in (ca, cb):
            assert shell(client, p, "cat /sdcard/Documents/b.txt /sdcard/Download/pushed.txt; ls /sdcard/Documents") \
                == "pushed-through-b\npushed-through-a\nb.txt\n"
    finally:
        user.close()
        a.stop()
        b.stop()


def test_a_live_screen_on_one_node_follows_input_made_through_another(workdir):
    """Shared simulated phones (the default on PostgreSQL with an s3:// store, no flag given)
    and live screens: text typed through a viewer on node A is published before it is
    acknowledged; a viewer of the same phone on node B soon gets frames that say they show it,
    and B's tasks read it back."""
    from test_streams import Viewer, ticket
    a, b = shared_sim_nodes(workdir, ["screen-a", "screen-b"])
    viewers = []
    try:
        a.start()
        b.start()
        ca, cb = a.client(), b.client()
        p = running_phone(ca)
        on_a = Viewer(a, p, ticket(ca, p))
        viewers.append(on_a)
        hello_a = on_a.text_of("hello")
        on_b = Viewer(b, p, ticket(cb, p))
        viewers.append(on_b)
        assert (hello_a["role"], on_b.text_of("hello")["role"]) == ("control", "view")
        on_a.send(t="text", seq=1, text="typed-on-a")
        assert on_a.text_of("ack") == {"t": "ack", "seq": 1, "ok": True}
        acked = time.time()
        deadline = acked + 10
        while True:
            assert time.time() < deadline, "no frame on B showed the input made on A"
            got = on_b.next()
            assert got[0] != "close", got
            if got[0] == "frame" and (got[1][6], got[1][7]) == (hello_a["tag"], 1):
                break
        print(f"\na frame on node B showed node A's input {time.time() - acked:.2f} s after A acknowledged it")
        out = shell(cb, p, "dumpsys input")
        assert "  text typed-on-a" in out.splitlines(), out
    finally:
        for v in viewers:
            v.close()
        a.stop()
        b.stop()


class Cluster:
    """A private PostgreSQL cluster (scripts/pg-cluster), which this test may stop and start.
    It lives directly under the system's temp dir: as root, the cluster belongs to the
    `postgres` user, who cannot enter the test's private workdir."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="cloudphone-outage-pg-"))
        self.script = str(ROOT / "scripts" / "pg-cluster")

    def start(self):
        return subprocess.run([self.script, "start", str(self.dir)], check=True,
                              capture_output=True, text=True).stdout.strip()

    def stop(self):
        subprocess.run([self.script, "stop", str(self.dir)], check=True, capture_output=True)

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def test_shared_simulated_phones_need_a_database_and_a_bucket(workdir):
    """`--sim-state shared` with nothing to share through: the node refuses to start, saying
    what it needs (a node of its own would silently keep its phones to itself)."""
    for name, database in (("sim-shared-sqlite", None), ("sim-shared-local-objects", fresh_database())):
        data = workdir / name
        node = Server(data, database=database, object_store=f"file://{data / 'objects'}",
                      extra_args=["--sim-state", "shared"])
        if database is None:
            node.database = None
        with pytest.raises(RuntimeError, match="server exited"):
            node.start()
        log = (workdir / f"{name}.log").read_text()
        assert "--sim-state shared" in log and "needs --database-url and an s3:// --object-store" in log, log
    # With both, shared is the default, and `local` keeps the data dir.
    objects = s3_object_store(s3_bucket())
    for name, flags, shared in (("sim-default", [], True), ("sim-local", ["--sim-state", "local"], False)):
        node = Server(workdir / name, database=fresh_database(), object_store=objects, extra_args=flags).start()
        node.stop()
        log = (workdir / f"{name}.log").read_text()
        assert ("simulated phones are shared through the store" in log) == shared, log


def test_database_outage_gives_503_and_recovers(workdir):
    cluster = Cluster()
    url = cluster.start()
    try:
        server = Server(workdir / "outage", sim_delay_ms=100, database=url,
                        extra_args=["--lease-ms", str(LEASE_MS)]).start()
        try:
            run_outage(server, cluster)
        finally:
            server.stop()
    finally:
        cluster.stop()
        cluster.remove()


def run_outage(server, cluster):
    client = server.client()
    ids = create_fleet(client, 20)
    wait_for(lambda: all_running(client, ids), timeout=60, what="fleet RUNNING")

    # Load: a client submitting reboots and polling DescribeTasks until told to stop.
    stop = threading.Event()
    accepted, refused = [], collections.Counter()

    def load():
        while not stop.is_set():
            try:
                r = client.reboot_android_instances_in_group(
                    models.RebootAndroidInstancesInGroupRequest(android_instance_ids=ids))
                accepted.append(r.body.tasks.parent_task_id)
                client.describe_tasks(models.DescribeTasksRequest(max_results=50))
            except ServerException as e:
                refused[(e.status_code, e.code)] += 1
            except Exception as e:  # an IncorrectStatus race is fine; a hang or a crash is not
                refused[type(e).__name__] += 1
            time.sleep(0.1)

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        loaders = [pool.submit(load) for _ in range(2)]
        wait_for(lambda: len(accepted) >= 3, timeout=30, what="load to start")
        cluster.stop()
        try:
            # While the database is down every call fails fast with a clear 5xx vendor code.
            for _ in range(3):
                began = time.monotonic()
                with pytest.raises(ServerException) as info:
                    client.describe_tasks(models.DescribeTasksRequest(max_results=10))
                took = time.monotonic() - began
                assert info.value.status_code == 503, info.value
                assert info.value.code == "ServiceUnavailable"
                assert "database" in info.value.message
                assert took < 8, f"an outage answer took {took:.1f} s"
            time.sleep(2)
        finally:
            cluster.start()
        # Back by itself: calls succeed again without restarting the node.
        wait_for(lambda: succeeds(client), timeout=30, interval=0.5, what="the node to recover")
        accepted_after = len(accepted)
        wait_for(lambda: len(accepted) > accepted_after, timeout=30, what="new batches after the outage")
        stop.set()
        for f in loaders:
            f.result(timeout=60)

    assert refused[(503, "ServiceUnavailable")] > 0, refused
    assert all(k[0] == 503 for k in refused if isinstance(k, tuple)), refused

    # Every accepted batch ends, with counters that match its children.
    def all_done():
        batches = [tasks_of(client, task_ids=[p])[0] for p in accepted]
        return batches if all(b.task_status not in ("Waiting", "Processing") for b in batches) else None
    batches = wait_for(all_done, timeout=120, interval=1, what="every batch to end")
    for b in batches:
        kids = tasks_of(client, parent_task_id=b.task_id)
        assert len(kids) == b.total_child_count == len(ids)
        counts = collections.Counter(k.task_status for k in kids)
        assert counts["Finished"] == b.success_child_count
        assert counts["Failed"] == b.failed_child_count
        assert b.running_child_count == 0
        assert counts["Finished"] + counts["Failed"] + counts["Skipped"] == len(kids)
    assert all_running(client, ids)


def succeeds(client):
    try:
        client.describe_tasks(models.DescribeTasksRequest(max_results=1))
        return True
    except ServerException:
        return False


def test_a_disabled_key_is_refused_on_every_node(workdir):
    database = fresh_database()
    a = Server(workdir / "admin-nodes", database=database).start()
    b = Server(workdir / "admin-nodes", database=database).start()
    try:
        made = subprocess.run([str(BINARY), "admin", "keys", "create", "--account", "acct-nodes",
                               "--database-url", database], capture_output=True, text=True, check=True)
        key = json.loads(made.stdout)
        key = (key["AccessKeyId"], key["AccessKeySecret"])
        ca, cb = a.client(key=key), b.client(key=key)
        for c in (ca, cb):  # each node now holds the key in its cache
            c.describe_regions(models.DescribeRegionsRequest())
        subprocess.run([str(BINARY), "admin", "keys", "disable", key[0], "--database-url", database],
                       capture_output=True, check=True)
        for c in (ca, cb):
            with pytest.raises(ClientException) as e:
                c.describe_regions(models.DescribeRegionsRequest())
            assert e.value.code == "SignatureDoesNotMatch"
    finally:
        a.stop()
        b.stop()


def test_a_viewer_on_one_node_is_seen_and_disconnected_from_another(workdir):
    """Live screens over two nodes (docs/design.md §14.4): a viewer's WebSocket on node A is a
    session row every node reads, so node B answers SessionStatus `connect`; a viewer on B takes
    control and A's viewer learns it watches within the heartbeat's second; DisconnectAndroidInstance
    called on B closes A's viewer through A's heartbeat within about a second."""
    from test_streams import Viewer, ticket
    data = workdir / "stream-nodes"
    database = fresh_database()
    a = node(data, database, delay=10).start()
    b = node(data, database, delay=10).start()
    try:
        ca, cb = a.client(), b.client()
        (p,) = create_fleet(ca, 1)
        wait_for(lambda: all_running(cb, [p]), timeout=60, what="the phone RUNNING")
        assert describe_instances(cb, [p])[p].session_status == "disConnect"

        on_a = Viewer(a, p, ticket(ca, p))
        hello = on_a.text_of("hello")
        assert hello["role"] == "control"
        on_a.frame()
        assert describe_instances(cb, [p])[p].session_status == "connect"

        # A ticket issued by one node opens on the other; control moves across nodes.
        on_b = Viewer(b, p, ticket(ca, p))
        assert on_b.text_of("hello")["role"] == "view"
        on_b.send(t="control", take=True)
        assert on_b.text_of("role")["role"] == "control"
        started = time.time()
        assert on_a.text_of("role")["role"] == "view"
        assert time.time() - started < 2.5, "A learns of it within its heartbeat"

        started = time.time()
        cb.disconnect_android_instance(models.DisconnectAndroidInstanceRequest(instance_ids=[p]))
        assert on_b.closed() == (4000, "Disconnected")
        assert on_a.closed() == (4000, "Disconnected")
        took = time.time() - started
        assert took < 2.5, f"node A closed its viewer {took:.1f} s after the disconnect on B"
        assert describe_instances(ca, [p])[p].session_status == "disConnect"
    finally:
        a.stop()
        b.stop()
