"""One tenant against the others, and what the server gives away (issue 21, items 2, 6 and 8):
simulated faults belong to the account that injected them; a signed request cannot be reshaped
into another parameter set; an error's HostId carries no process id; an unknown key id answers
exactly as a bad signature; and every file the server writes is owner-only.

All against the real binary on loopback, a second account's key made by `keys create`."""

import hashlib
import json
import os
import stat
import subprocess
import uuid

import pytest
import requests
from alibabacloud_eds_aic20230930 import models

from conftest import (API_VERSION, BINARY, UA, Server, acs3_signature, api_error, call, clear_faults,
                      create_group, error_code, new_nonce, run_shell, signed_request, tasks_of, utc_now,
                      v1_request, wait_batch)
from test_objects import cp, object_request, route
from test_watch import watch

REBOOT = "RebootAndroidInstancesInGroup"


@pytest.fixture(scope="module")
def other(server):
    """A second account's key and client."""
    key = server.create_key("tenancy-b-" + uuid.uuid4().hex[:6])
    return key, server.client(key=key)


def reboot(client, phone):
    """The instance task of a reboot of `phone`, once it ended."""
    r = client.reboot_android_instances_in_group(
        models.RebootAndroidInstancesInGroupRequest(android_instance_ids=[phone])).body
    wait_batch(client, r.request_id)
    (t,) = tasks_of(client, invoke_id=r.request_id, level=2)
    return t


# --- item 2: simulated faults are per account ---------------------------------------------------

def test_faults_belong_to_the_account_that_injected_them(client, other):
    _, theirs_client = other
    _, (mine,) = create_group(client, 1, name="faults-mine")
    _, (theirs,) = create_group(theirs_client, 1, name="faults-theirs")
    try:
        # B's fault without an InstanceId fails B's reboots, never A's.
        call(theirs_client, "InjectSimulatedFault", {"TaskType": "RebootInstance", "ErrorMsg": "by B"})
        t = reboot(client, mine)
        assert t.task_status == "Finished", (t.error_code, t.error_msg)
        t = reboot(theirs_client, theirs)
        assert (t.task_status, t.error_msg) == ("Failed", "by B")

        # A's fault, then B clears: B's fault is gone, A's stays.
        call(client, "InjectSimulatedFault", {"TaskType": "RebootInstance", "ErrorMsg": "by A"})
        clear_faults(theirs_client)
        t = reboot(theirs_client, theirs)
        assert t.task_status == "Finished", (t.error_code, t.error_msg)
        t = reboot(client, mine)
        assert (t.task_status, t.error_msg) == ("Failed", "by A")

        # B cannot aim a fault at A's phone: it is not found, as any id of another account.
        e = api_error(call, theirs_client, "InjectSimulatedFault",
                      {"TaskType": "RebootInstance", "InstanceId": mine})
        assert (e.status_code, e.code) == (404, "InvalidInstanceId.NotFound")
    finally:
        clear_faults(client)
        clear_faults(theirs_client)
    assert reboot(client, mine).task_status == "Finished"


# --- item 6: a signature binds one parameter set ------------------------------------------------

def acs3_headers(server, action, query, key=None):
    """The headers of an ACS3 request signed over `query` (pairs), as the SDK signs it."""
    key_id, secret = key or server.key
    h = {"host": server.endpoint, "x-acs-action": action, "x-acs-version": API_VERSION,
         "x-acs-date": utc_now(), "x-acs-signature-nonce": new_nonce(), "accept": "application/json",
         "user-agent": UA, "x-acs-credentials-provider": "static_ak",
         "x-acs-content-sha256": hashlib.sha256(b"").hexdigest()}
    signed = sorted(h)
    sig = acs3_signature("POST", "/", query, h, signed, b"", secret)
    h["Authorization"] = f"ACS3-HMAC-SHA256 Credential={key_id},SignedHeaders={';'.join(signed)},Signature={sig}"
    return h


def test_a_signed_dry_run_cannot_be_replayed_as_a_real_call(server, client):
    _, (phone,) = create_group(client, 1, name="reshape")
    dry_run = [("AndroidInstanceIds.1", phone), ("ClientToken", "abc"), ("DryRun", "true")]
    # The attacker's reshaping: one name holding `ClientToken=abc&DryRun`, with the value true.
    reshaped = [("AndroidInstanceIds.1", phone), ("ClientToken=abc&DryRun", "true")]
    # ACS3 leaves names unencoded in the canonical query: both sets sign alike.
    h = acs3_headers(server, REBOOT, dry_run)
    same = {k: v for k, v in h.items() if k != "Authorization"}
    assert acs3_signature("POST", "/", reshaped, same, sorted(same), b"", server.key[1]) == \
        acs3_signature("POST", "/", dry_run, same, sorted(same), b"", server.key[1])
    # The captured dry run (never delivered) is sent with the reshaped query.
    r = requests.post(f"http://{server.endpoint}/?AndroidInstanceIds.1={phone}&ClientToken%3Dabc%26DryRun=true",
                      headers=h, data=b"", timeout=30)
    assert error_code(r) == (400, "InvalidParameter"), r.content
    assert "ClientToken=abc&DryRun" in r.json()["Message"]
    assert tasks_of(client, instance_id=phone, task_type="RebootInstance") == [], "nothing ran"
    # The dry run itself, delivered as signed, is what it always was.
    r = requests.post(f"http://{server.endpoint}/?AndroidInstanceIds.1={phone}&ClientToken=abc&DryRun=true",
                      headers=acs3_headers(server, REBOOT, dry_run), data=b"", timeout=30)
    assert error_code(r) == (400, "DryRunOperation")


@pytest.mark.parametrize("name", ["ClientToken=abc&DryRun", "a b", "Tag.1.K~y", "a/b", "名", "x\ny", "a*"])
def test_names_outside_the_vendor_alphabet_are_refused_in_every_style(server, name):
    """Before authentication (the decoder reads names before any key): a well-signed request,
    one signed with the legacy scheme over GET and POST, a form body, one of an unknown key and
    a watch stream all get the same 400."""
    want = (400, "InvalidParameter")
    query = [("MaxResults", "1"), (name, "v")]
    assert error_code(signed_request(server, "DescribeTasks", query)) == want
    assert error_code(signed_request(server, "DescribeImageList", body=[("ImageType", "System"), (name, "v")])) == want
    assert error_code(v1_request(server, "DescribeTasks", query)) == want
    assert error_code(v1_request(server, "DescribeTasks", query, method="POST")) == want
    assert error_code(signed_request(server, "DescribeTasks", query, key=("nobody", "x"))) == want
    assert error_code(watch(server, query)) == want
    # The names the SDK sends (letters, digits, dots; `_` and `-` too) still pass.
    r = signed_request(server, "DescribeTasks", [("MaxResults", "1"), ("ResourceIds.1", "acp-x"),
                                                 ("Ignored_name-1", "v")])
    assert r.status_code == 200, r.content


# --- item 8: HostId, key ids, file modes ---------------------------------------------------------

def test_host_id_carries_no_process_id(server):
    body = signed_request(server, "DescribeTasks", [("TaskType", "Bogus")]).json()
    assert body["Code"] == "InvalidParameter.TaskType" and body["HostId"]
    assert str(server.proc.pid) not in body["HostId"].split("-"), body["HostId"]


def answer(r):
    """What a refusal says: status, Code and Message (the request id aside)."""
    body = r.json()
    return r.status_code, body["Code"], body["Message"]


def test_an_unknown_key_answers_exactly_as_a_bad_signature(server, client):
    from test_accounts import admin
    bad = (server.key[0], "not-the-secret")
    unknown = ("LTAI" + uuid.uuid4().hex[:16], "not-the-secret")
    disabled = server.create_key("tenancy-off-" + uuid.uuid4().hex[:6])
    admin(server, "keys", "disable", disabled[0])
    for key in (unknown, disabled):
        # ACS3 and the legacy scheme, on the RPC API.
        assert answer(signed_request(server, "DescribeTasks", key=key)) == \
            answer(signed_request(server, "DescribeTasks", key=bad))
        assert answer(v1_request(server, "DescribeTasks", key=key)) == \
            answer(v1_request(server, "DescribeTasks", key=bad))
        # Through the SDK.
        got = api_error(server.client(key=key).describe_regions, models.DescribeRegionsRequest())
        want = api_error(server.client(key=bad).describe_regions, models.DescribeRegionsRequest())
        assert (got.status_code, got.code, got.data["Message"]) == \
            (want.status_code, want.code, want.data["Message"])
        # The watch stream and the object routes.
        assert answer(watch(server, key=key)) == answer(watch(server, key=bad))
        target = route("tenancy", "k.bin")
        assert answer(object_request(server, "PUT", target, b"x", key=key)) == \
            answer(object_request(server, "PUT", target, b"x", key=bad))
    assert answer(signed_request(server, "DescribeTasks", key=bad))[:2] == (403, "SignatureDoesNotMatch")
    # The console's sign-in: one page for a wrong secret and for a key id nobody has.
    login = f"http://{server.endpoint}/console/login"
    pages = [requests.post(login, data={"access_key_id": k, "access_key_secret": s}, timeout=10)
             for k, s in (bad, unknown, disabled)]
    assert {(p.status_code, p.text) for p in pages} == {(401, pages[0].text)}


def walk_modes(root):
    """(path, mode) of `root` and everything under it."""
    out = [(root, os.lstat(root).st_mode)]
    for here, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(here, name)
            out.append((path, os.lstat(path).st_mode))
    return out


def test_the_servers_files_are_owner_only(workdir, tmp_path):
    data = workdir / "owner-only"
    # The local object store whatever the pass: this is about the files in the data dir.
    s = Server(data, sim_delay_ms=20, object_store=f"file://{data / 'objects'}").start()
    try:
        c = s.client()
        local = tmp_path / "in.bin"
        local.write_bytes(os.urandom(50_000))
        # An object and its MD5 record, through the object route and its staging.
        assert cp(s, local, "oss://tenancy-bucket/in/in.bin").returncode == 0
        _, (phone,) = create_group(c, 1, name="modes")
        # A file on a simulated phone (SendFile), fetched back into an object (FetchFile).
        r = c.send_file(models.SendFileRequest(
            android_instance_id_list=[phone], upload_url="oss://tenancy-bucket/in/in.bin",
            source_file_path="/sdcard/Download/", upload_type="OSS",
            upload_endpoint="oss-cn-hangzhou.aliyuncs.com")).body
        assert wait_batch(c, r.request_id).task_status == "Finished"
        r = c.fetch_file(models.FetchFileRequest(
            android_instance_id_list=[phone], source_file_path="/sdcard/Download/in.bin",
            upload_type="OSS", upload_url="oss://tenancy-bucket/out",
            upload_endpoint="oss-cn-hangzhou.aliyuncs.com")).body
        assert wait_batch(c, r.request_id).task_status == "Finished"
        # A command whose output is saved as an object, and a screenshot.
        out, code = run_shell(c, phone, "mkdir /sdcard/made && touch /sdcard/made/f && ls /sdcard/made")
        assert (out, code) == ("f\n", 0)
        r = c.create_screenshot(models.CreateScreenshotRequest(android_instance_id_list=[phone])).body
        assert wait_batch(c, r.request_id).task_status == "Finished"
    finally:
        s.stop()
    modes = walk_modes(str(data))
    assert len(modes) > 20, modes
    assert any("/objects/" in p for p, _ in modes) and any("/sim/" in p for p, _ in modes)
    # Nothing the server wrote is open to group or others (links aside, which have no mode).
    loose = [(p, oct(stat.S_IMODE(m))) for p, m in modes
             if not stat.S_ISLNK(m) and stat.S_IMODE(m) & 0o077]
    assert loose == [], loose[:20]
    assert stat.S_IMODE(os.stat(data).st_mode) == 0o700
