"""A phone farm on several Docker hosts (issue 24), through the official SDK: three private
Docker engines on this machine (the session's engine, a second one on a unix socket, and a third
reached over TCP with TLS client certificates on loopback) carry the phones of two server nodes
that share one PostgreSQL database (and one S3 bucket when the test S3 server is up), each node
with its own data dir. The phones are the TEST FIXTURE phone image (busybox and test-adbd: no
Android runs here), loaded into each engine.

Checked: 30 phones spread 10/10/10, a cordoned host kept free of new phones, a container that
dies turning its phone UNAVAILABLE and back, a node SIGKILLed in the middle of a batch (the other
finishes it and takes over its hosts), a drain moving a host's phones with their files (and its
refusals), and a killed engine (its phones UNAVAILABLE within 5 s, the others working on, a Reset
bringing its phones back on the other hosts, a delete of its phones needing no engine)."""

import json
import os
import random
import subprocess
import time
import uuid

import pytest
from alibabacloud_eds_aic20230930 import models

import conftest
from conftest import (BINARY, DOCKER_HOST, ROOT, S3_ENDPOINT, Server, api_error, describe_instances,
                      tasks_of, wait_batch, wait_for)
from conftest import run_shell as sh
from test_docker_backend import ANDROID_12

pytestmark = pytest.mark.skipif(conftest.STORE == "postgres",
                                reason="runs in the first pass (it always uses PostgreSQL itself)")

HOSTS = ("h1", "h2", "h3")


def engine_cli(socket, *args, check=True):
    return subprocess.run(["docker", "-H", socket, *args], capture_output=True, text=True,
                          check=check).stdout.strip()


@pytest.fixture(scope="module")
def engines(workdir, phone_image):
    """{host name: (its unix socket, its URL in the backends file, TLS files or None)}."""
    if not conftest.ADMIN_URL:
        pytest.fail("CLOUDPHONE_TEST_DATABASE_URL is not set (scripts/test starts a cluster)", pytrace=False)
    started = []
    out = {"h1": (DOCKER_HOST, DOCKER_HOST, None)}
    try:
        for name, tls in (("h2", False), ("h3", True)):
            d = workdir / f"engine-{name}"
            args = [str(ROOT / "scripts/dockerd-private"), "start", str(d)]
            if tls:
                args += ["--tls", str(conftest.free_port())]
            url = subprocess.run(args, capture_output=True, text=True, check=True).stdout.strip()
            started.append(d)
            sock = f"unix://{d}/docker.sock"
            save = subprocess.Popen(["docker", "-H", DOCKER_HOST, "save", phone_image], stdout=subprocess.PIPE)
            subprocess.run(["docker", "-H", sock, "load", "-q"], stdin=save.stdout, check=True,
                           capture_output=True)
            save.wait()
            out[name] = (sock, url, d / "certs" if tls else None)
        yield out
    finally:
        for d in started:
            subprocess.run([str(ROOT / "scripts/dockerd-private"), "stop", str(d)], capture_output=True)


def farm_toml(path, engines, adb_port, prefix, max_phones=20):
    base = random.randrange(20000, 31000, 300)
    hosts = []
    for i, name in enumerate(HOSTS):
        sock, url, certs = engines[name]
        lo = base + 100 * i
        if certs:
            reach = (f'url = "{url}"\ntls_ca = "{certs}/ca.pem"\ntls_cert = "{certs}/cert.pem"\n'
                     f'tls_key = "{certs}/key.pem"\nadb_host = "127.0.0.1"\n')
        else:
            reach = f'socket = "{url}"\n'
        hosts.append(f'[[docker.hosts]]\nname = "{name}"\n{reach}adb_ports = "{lo}-{lo + 99}"\n'
                     f'max_phones = {max_phones}\n')
    path.write_text(f"""
sim = false

[adb]
port = {adb_port}

[docker]
network = "host"
boot_timeout_secs = 60
stop_timeout_secs = 2
name_prefix = "{prefix}"

[[docker.images]]
id = "{ANDROID_12}"
name = "Test phone, Android 12"
reference = "{conftest.PHONE_IMAGE}"
env = ["ADBD_PORT={{adb_port}}"]

""" + "\n".join(hosts))


class Farm:
    def __init__(self, workdir, engines, adb_port):
        self.workdir, self.engines, self.adb_port = workdir, engines, adb_port
        self.prefix = f"cpf{uuid.uuid4().hex[:6]}-"
        self.database = conftest.fresh_database()
        self.config = workdir / "farm-backends.toml"
        farm_toml(self.config, engines, adb_port, self.prefix)
        self.bucket = conftest.s3_object_store(conftest.s3_bucket()) if S3_ENDPOINT else None
        self.nodes = {}

    def node(self, name):
        server = Server(self.workdir / f"farm-{name}", sim_delay_ms=None, database=self.database,
                        object_store=self.bucket,
                        extra_args=["--backends", str(self.config), "--lease-ms", "3000",
                                    "--host-lease-ms", "3000"])
        self.nodes[name] = server
        return server.start()

    def admin(self, *args):
        out = subprocess.run([str(BINARY), "admin", *args, "--output", "json", "--database-url", self.database,
                              "--data-dir", str(self.workdir / "farm-a")],
                             capture_output=True, text=True, check=True, env={"PATH": os.environ["PATH"]}).stdout
        return json.loads(out) if out.strip().startswith(("[", "{")) else out

    def admin_run(self, *args):
        """`cloudphone admin ARGS` as it ran (exit status, stdout, stderr), in table output."""
        return subprocess.run([str(BINARY), "admin", *args, "--database-url", self.database,
                               "--data-dir", str(self.workdir / "farm-a")],
                              capture_output=True, text=True, env={"PATH": os.environ["PATH"]})

    def hosts(self):
        return {h["Name"]: h for h in self.admin("hosts", "list")}

    def containers(self, name):
        """The ids of the phones whose containers run on host `name`."""
        sock = self.engines[name][0]
        # A killed engine has none.
        names = engine_cli(sock, "ps", "--format", "{{.Names}}", "--filter", f"name={self.prefix}",
                           check=False).split()
        return {n[len(self.prefix):] for n in names if n.startswith(self.prefix)}

    def where(self, ids):
        return {name: len(self.containers(name) & set(ids)) for name in HOSTS}

    def cleanup(self):
        for server in self.nodes.values():
            server.stop()
        # The session's ADB server keeps the phones of the killed engine (and any a node did
        # not delete) as devices it keeps reconnecting to; the modules after this one share it.
        subprocess.run(["adb", "-P", str(self.adb_port), "disconnect"], capture_output=True)
        for sock, _, _ in self.engines.values():
            for c in engine_cli(sock, "ps", "-aq", "--filter", f"name={self.prefix}", check=False).split():
                engine_cli(sock, "rm", "-f", c, check=False)
            for v in engine_cli(sock, "volume", "ls", "-q", "--filter", f"name={self.prefix}", check=False).split():
                engine_cli(sock, "volume", "rm", "-f", v, check=False)


@pytest.fixture(scope="module")
def farm(workdir, engines, adb_server):
    f = Farm(workdir, engines, adb_server)
    try:
        f.node("a")
        f.node("b")
        yield f
    finally:
        f.cleanup()


def create(client, n, name):
    r = client.create_android_instance_group(models.CreateAndroidInstanceGroupRequest(
        biz_region_id="cn-hangzhou", image_id=ANDROID_12, instance_group_spec="acp.basic.small",
        number_of_instances=n, instance_group_name=name)).body
    ids = r.instance_group_infos[0].instance_ids
    wait_for(lambda: all(m.android_instance_status == "RUNNING" for m in describe_instances(client, ids).values()),
             timeout=180, what=f"{n} containers RUNNING")
    return r.instance_group_ids[0], ids


def delete_group(client, group, ids):
    client.delete_android_instance_group(models.DeleteAndroidInstanceGroupRequest(instance_group_ids=[group]))
    wait_for(lambda: not describe_instances(client, ids), timeout=120, what="the group deleted")


def statuses(client, ids):
    return {i: m.android_instance_status for i, m in describe_instances(client, ids).items()}


def test_thirty_phones_spread_ten_ten_ten_over_three_engines(farm):
    a = farm.nodes["a"].client()
    wait_for(lambda: all(h["Health"] == "healthy" for h in farm.hosts().values()), timeout=20,
             what="every host healthy")
    group, ids = create(a, 30, "farm-spread")
    assert farm.where(ids) == {"h1": 10, "h2": 10, "h3": 10}
    hosts = farm.hosts()
    assert {n: hosts[n]["Phones"] for n in HOSTS} == {"h1": 10, "h2": 10, "h3": 10}
    assert all(hosts[n]["Config"] == "same" and hosts[n]["Owner"] for n in HOSTS), hosts
    # A phone of the TLS engine answers commands, through node B too.
    on_tls = sorted(farm.containers("h3") & set(ids))[0]
    assert sh(farm.nodes["b"].client(), on_tls, "echo tls") == ("tls\n", 0)
    delete_group(a, group, ids)
    assert farm.where(ids) == {"h1": 0, "h2": 0, "h3": 0}


def test_a_cordoned_host_takes_no_new_phones(farm):
    a = farm.nodes["a"].client()
    farm.admin("hosts", "cordon", "h2")
    try:
        assert farm.hosts()["h2"]["Cordoned"] is True
        group, ids = create(a, 6, "farm-cordon")
        assert farm.where(ids) == {"h1": 3, "h2": 0, "h3": 3}
    finally:
        farm.admin("hosts", "uncordon", "h2")
    delete_group(a, group, ids)


def test_a_container_that_dies_turns_its_phone_unavailable_and_back(farm):
    a = farm.nodes["a"].client()
    group, ids = create(a, 3, "farm-die")
    victim = sorted(farm.containers("h2") & set(ids))[0]
    sock = farm.engines["h2"][0]
    engine_cli(sock, "kill", farm.prefix + victim)
    wait_for(lambda: statuses(a, [victim])[victim] == "UNAVAILABLE", timeout=10, what="UNAVAILABLE")
    assert all(s == "RUNNING" for i, s in statuses(a, ids).items() if i != victim)
    engine_cli(sock, "start", farm.prefix + victim)
    wait_for(lambda: statuses(a, [victim])[victim] == "RUNNING", timeout=60, what="RUNNING again")
    assert sh(a, victim, "echo back") == ("back\n", 0)
    delete_group(a, group, ids)


def test_a_node_killed_in_the_middle_of_a_batch(farm):
    a, b = farm.nodes["a"].client(), farm.nodes["b"].client()
    group, ids = create(a, 12, "farm-kill")
    # A reboot may run again (a command may not: one whose node died fails InstanceUnreachable,
    # for it may have run).
    r = a.reboot_android_instances_in_group(
        models.RebootAndroidInstancesInGroupRequest(android_instance_ids=ids)).body
    invoke = r.request_id
    wait_for(lambda: any(t.task_status == "Processing" for t in tasks_of(a, invoke_id=invoke, level=2)),
             timeout=20, what="some reboots running")
    node_a = farm.nodes["a"]
    owner_a = node_a.node_id()
    # Each node watches its share: the first took every host at its start and handed one over
    # to the second, which joined after it.
    wait_for(lambda: {h["Owner"] for h in farm.hosts().values()} == {owner_a, farm.nodes["b"].node_id()},
             timeout=15, what="each node watching some of the hosts")
    node_a.kill()
    killed = time.time()
    batch = wait_batch(b, invoke, timeout=120)
    kids = tasks_of(b, invoke_id=invoke, level=2)
    failed = [(t.instance_id, t.error_code) for t in kids if t.task_status != "Finished"]
    assert batch.task_status == "Finished" and not failed, failed
    assert all(s == "RUNNING" for s in statuses(b, ids).values())
    # B watches every host within the lease's lapse (3 s) and a tick or two.
    def taken_over():
        hosts = farm.hosts().values()
        owners = {h["Owner"] for h in hosts}
        return len(owners) == 1 and owner_a not in owners and None not in owners \
            and all(h["Health"] == "healthy" for h in hosts)
    wait_for(taken_over, timeout=10, what="node B watching every host")
    print(f"hosts taken over {time.time() - killed:.1f} s after the kill")
    farm.node("a")
    delete_group(b, group, ids)


def drain(farm, host, *flags):
    """`admin hosts drain HOST --wait FLAGS`: its drain id and output; it must succeed."""
    started = time.time()
    r = farm.admin_run("hosts", "drain", host, "--wait", *flags)
    assert r.returncode == 0, r.stdout + r.stderr
    print(f"drain of {host} {' '.join(flags)}: {time.time() - started:.1f} s\n{r.stdout}")
    return r.stdout.split(":")[0], r.stdout


def test_a_drain_moves_a_hosts_phones_with_their_files(farm):
    a = farm.nodes["a"].client()
    group, ids = create(a, 6, "farm-drain")
    assert farm.where(ids) == {"h1": 2, "h2": 2, "h3": 2}
    on_h1 = sorted(farm.containers("h1") & set(ids))
    for i in on_h1:
        assert sh(a, i, f"echo kept-{i} > /sdcard/marker && cat /sdcard/marker") == (f"kept-{i}\n", 0)
    drain_id, out = drain(farm, "h1")
    assert drain_id.startswith("dr-") and "moved 2/2, failed 0, running 0" in out, out
    # Moved: same ids, running on the other hosts with their files, nothing of ours left on h1.
    assert farm.where(ids) == {"h1": 0, "h2": 3, "h3": 3}
    assert all(s == "RUNNING" for s in statuses(a, ids).values())
    for i in on_h1:
        assert sh(farm.nodes["b"].client(), i, "cat /sdcard/marker") == (f"kept-{i}\n", 0)
    sock = farm.engines["h1"][0]
    assert not engine_cli(sock, "ps", "-aq", "--filter", f"name={farm.prefix}")
    assert not engine_cli(sock, "volume", "ls", "-q", "--filter", f"name={farm.prefix}")
    h1 = farm.hosts()["h1"]
    assert (h1["Phones"], h1["Cordoned"], h1["Drain"]) == (0, True, None), h1
    moves = farm.admin("hosts", "drains", drain_id)
    assert sorted(m["InstanceId"] for m in moves["Moves"]) == on_h1
    assert all(m["Status"] == "Finished" and m["Param"]["Mode"] == "copy" for m in moves["Moves"]), moves
    # A stopped phone moves stopped; a recreated one starts from its image.
    farm.admin("hosts", "uncordon", "h1")
    group2, two = create(a, 2, "farm-drain-stopped")
    assert farm.where(two)["h1"] == 2
    stopped, running = two
    a.stop_android_instance(models.StopAndroidInstanceRequest(android_instance_ids=[stopped]))
    wait_for(lambda: statuses(a, [stopped])[stopped] == "STOPPED", timeout=60, what="STOPPED")
    assert sh(a, running, "echo gone > /sdcard/marker") == ("", 0)
    _, out = drain(farm, "h1", "--recreate", "--placement", "binpack")
    assert "moved 2/2, failed 0" in out, out
    assert statuses(a, two) == {stopped: "STOPPED", running: "RUNNING"}
    assert sh(a, running, "test -e /sdcard/marker; echo $?") == ("1\n", 0)
    a.start_android_instance(models.StartAndroidInstanceRequest(android_instance_ids=[stopped]))
    wait_for(lambda: statuses(a, [stopped])[stopped] == "RUNNING", timeout=60, what="RUNNING")
    # Bin-packed: both on one host (h2 and h3 had 3 each; spread would put one on each).
    assert sorted(farm.where(two).values()) == [0, 0, 2], farm.where(two)
    farm.admin("hosts", "uncordon", "h1")
    delete_group(a, group, ids)
    delete_group(a, group2, two)


def test_drain_refusals(farm):
    a = farm.nodes["a"].client()
    r = farm.admin_run("hosts", "drain", "nope")
    assert r.returncode != 0 and "no host nope" in r.stderr, r.stderr
    r = farm.admin_run("hosts", "drain", "h1", "--placement", "tightest")
    assert r.returncode != 0 and '"tightest" is no placement: spread or binpack' in r.stderr, r.stderr
    for h in ("h2", "h3"):
        farm.admin("hosts", "cordon", h)
    try:
        group, ids = create(a, 2, "farm-drain-full")
        assert farm.where(ids)["h1"] == 2
        r = farm.admin_run("hosts", "drain", "h1")
        assert r.returncode != 0, r.stdout
        assert "room for 0 of 2 phones; add room or use --partial" in r.stderr, r.stderr
        assert farm.hosts()["h1"]["Cordoned"] is False, "a refused drain changes nothing"
        # Partial: what fits moves (here nothing), the rest stays.
        _, out = drain(farm, "h1", "--partial")
        assert "2 phones stay on h1" in out and "moved 0/0, failed 0" in out, out
        assert farm.where(ids)["h1"] == 2
    finally:
        for h in HOSTS:
            farm.admin("hosts", "uncordon", h)
    delete_group(a, group, ids)


def test_a_killed_engine_makes_its_phones_unavailable_within_five_seconds(farm, engines):
    """Last: the engine of h2 does not come back."""
    a = farm.nodes["a"].client()
    group, ids = create(a, 30, "farm-engine")
    assert farm.where(ids) == {"h1": 10, "h2": 10, "h3": 10}
    on_h2 = farm.containers("h2") & set(ids)
    others = [i for i in ids if i not in on_h2]
    subprocess.run([str(ROOT / "scripts/dockerd-private"), "kill", str(farm.workdir / "engine-h2")], check=True)
    killed = time.time()
    wait_for(lambda: all(s == "UNAVAILABLE" for s in statuses(a, list(on_h2)).values()), timeout=15, interval=0.1,
             what="h2's phones UNAVAILABLE")
    took = time.time() - killed
    print(f"h2's 10 phones UNAVAILABLE {took:.2f} s after its engine was killed")
    assert took < 5, took
    assert farm.hosts()["h2"]["Health"] == "unhealthy"
    assert all(s == "RUNNING" for s in statuses(a, others).values())
    r = a.run_command(models.RunCommandRequest(instance_ids=others, command_content="echo alive")).body
    wait_batch(a, r.invoke_id, timeout=120)
    assert all(t.task_status == "Finished" for t in tasks_of(a, invoke_id=r.invoke_id, level=2))
    # The nodes record their hosts every 10 s (placement trusts a host only while recorded
    # within 30 s; this farm is older than that by now).
    from datetime import datetime
    for name in ("h1", "h3"):
        seen = datetime.fromisoformat(farm.hosts()[name]["Seen"].replace("Z", "+00:00")).timestamp()
        assert time.time() - seen < 13, (name, time.time() - seen)
    # New phones go to the hosts that answer.
    _, more = create(a, 4, "farm-after")
    assert farm.where(more) == {"h1": 2, "h2": 0, "h3": 2}
    # Reset is the way back for a phone whose host is gone: it comes up on another host, its
    # data lost. A copy off that host is refused up front.
    r = farm.admin_run("hosts", "drain", "h2")
    assert r.returncode != 0 and "drain with --recreate" in r.stderr, r.stderr
    back = sorted(on_h2)[:2]
    a.reset_android_instances_in_group(models.ResetAndroidInstancesInGroupRequest(android_instance_ids=back))
    wait_for(lambda: all(s == "RUNNING" for s in statuses(a, back).values()), timeout=120,
             what="the reset phones RUNNING on other hosts")
    where = farm.where(back)
    assert where["h2"] == 0 and where["h1"] + where["h3"] == 2, where
    assert sh(a, back[0], "test -e /sdcard/marker; echo $?") == ("1\n", 0)
    # The phones left on the dead host are deleted without it.
    delete_group(a, group, ids)
