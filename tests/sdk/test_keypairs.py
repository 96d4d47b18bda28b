"""ADB endpoints and key pairs (issue 22) through the official SDK: CreateKeyPair, ImportKeyPair,
DescribeKeyPairs, ModifyKeyPairName, DeleteKeyPairs, AttachKeyPair, DetachKeyPair, SetAdbSecure,
StartInstanceAdb, StopInstanceAdb, ListInstanceAdbAttributes, and KeyPairId on
CreateAndroidInstanceGroup, DescribeAndroidInstances and DescribeAndroidInstanceGroups.

Every refusal is a vendor-style 4xx that changes nothing; another account's key pair or phone is
"not found". Keys are checked against independent makers: the PEM of CreateKeyPair is loaded by
Python's `cryptography` and its adbkey.pub computed here from the RSA numbers (not by the
server), and `adb keygen` (Debian's adb) makes keys ImportKeyPair must take. The gateway's ports
are only allocated and reported here; test_adb_gateway.py connects to them."""

import base64
import re
import struct
import subprocess
import threading
import uuid

import pytest
import requests
from alibabacloud_eds_aic20230930 import models
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from conftest import (Server, api_error, call, create_group, describe_instances, free_port_range, inject_fault,
                      wait_batch, wait_for)

PLAIN_TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
PUBLIC_HOST = "gw.cloudphone.test"
# The gateway opens every port of its range.
LOW, HIGH = free_port_range(40)
ADB = "/usr/bin/adb"
TOKEN = "keypairs-scrape-token"


@pytest.fixture(scope="module")
def gw(workdir):
    """A server with an ADB gateway configured (its ports are allocated, not opened yet)."""
    s = Server(workdir / "adb-gateway", extra_args=[
        "--adb-ports", f"{LOW}-{HIGH}", "--adb-public-host", PUBLIC_HOST, "--metrics-token", TOKEN]).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def a(gw):
    return gw.client()


@pytest.fixture(scope="module")
def b(gw):
    """Another account on the same server."""
    return gw.client(key=gw.create_key("acct-keypairs-b"))


def name(prefix="k"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def adb_public_key(public, comment):
    """adbkey.pub of an RSA public key, computed here from Android's struct layout: modulus
    words, -1/n mod 2^32, n and R^2 mod n (R = 2^2048) little-endian, the exponent."""
    n, e = public.public_numbers().n, public.public_numbers().e
    raw = (struct.pack("<II", 64, (-pow(n, -1, 1 << 32)) % (1 << 32)) + n.to_bytes(256, "little")
           + pow(2, 4096, n).to_bytes(256, "little") + struct.pack("<I", e))
    assert len(raw) == 524
    return base64.b64encode(raw).decode() + (" " + comment if comment else "")


def fresh_public_key(comment="tester@host"):
    return adb_public_key(rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key(), comment)


def import_key(client, key_name=None, body=None):
    r = client.import_key_pair(models.ImportKeyPairRequest(
        key_pair_name=key_name or name(), public_key_body=body or fresh_public_key())).body
    return r.data.key_pair_id


def key_pairs(client, **kw):
    """Every key pair the filters find, all pages walked with the given page size."""
    out, token = [], None
    while True:
        r = client.describe_key_pairs(models.DescribeKeyPairsRequest(next_token=token, **kw)).body
        out += r.data
        token = r.next_token
        if not token:
            return out


def key_of(client, instance):
    return describe_instances(client, [instance])[instance].key_pair_id


def endpoints(client, **kw):
    """ListInstanceAdbAttributes, every page: {instance id: entry}."""
    out, token = {}, None
    while True:
        r = client.list_instance_adb_attributes(models.ListInstanceAdbAttributesRequest(
            next_token=token, **kw)).body
        for d in r.data:
            out[d.instance_id] = d
        token = r.next_token
        if not token:
            return out


# --- key pairs ---------------------------------------------------------------------------------

def test_create_key_pair_returns_a_pkcs8_pem_that_loads(a):
    key_name = name("made")
    r = a.create_key_pair(models.CreateKeyPairRequest(key_pair_name=key_name)).body
    d = r.data
    assert re.fullmatch(r"kp-[0-9a-z]{16}", d.key_pair_id), d.key_pair_id
    assert d.key_pair_name == key_name and PLAIN_TIME.match(d.gmt_created)
    assert d.private_key_body.startswith("-----BEGIN PRIVATE KEY-----\n")
    private = serialization.load_pem_private_key(d.private_key_body.encode(), password=None)
    assert isinstance(private, rsa.RSAPrivateKey)
    assert private.key_size == 2048 and private.public_key().public_numbers().e == 65537
    # The server kept the public half: the same key, imported under another name, is a key of
    # its own (names are what must be unique), and listing never shows a private key.
    twin = import_key(a, body=adb_public_key(private.public_key(), "same@key"))
    listed = {k.key_pair_id: k for k in key_pairs(a, key_pair_ids=[d.key_pair_id, twin])}
    assert set(listed) == {d.key_pair_id, twin}
    assert listed[d.key_pair_id].key_pair_name == key_name
    assert listed[d.key_pair_id].gmt_created == d.gmt_created
    assert "PrivateKeyBody" not in str(call(a, "DescribeKeyPairs", {"KeyPairIds.1": d.key_pair_id}))


def test_import_takes_what_adb_keygen_writes(a, tmp_path):
    out = subprocess.run([ADB, "keygen", str(tmp_path / "adbkey")], capture_output=True)
    assert out.returncode == 0, out
    text = (tmp_path / "adbkey.pub").read_text()
    kid = import_key(a, name("keygen"), text)
    # Its adbkey and our reading of the struct agree: the public key computed here from adb's
    # private key is the same text (comment aside).
    private = serialization.load_pem_private_key((tmp_path / "adbkey").read_bytes(), password=None)
    assert adb_public_key(private.public_key(), "") == text.split()[0]
    assert [k.key_pair_id for k in key_pairs(a, key_pair_ids=[kid])] == [kid]


def tampered(text, offset, xor=1):
    raw = bytearray(base64.b64decode(text.split()[0]))
    raw[offset] ^= xor
    return base64.b64encode(bytes(raw)).decode()


@pytest.mark.parametrize("why", ["empty-ish", "not base64", "short", "long", "words", "n0inv", "rr", "exponent",
                                 "top bit", "pem", "two lines", "control char"])
def test_malformed_public_keys_are_refused_and_nothing_is_stored(a, why):
    good = fresh_public_key()
    raw = base64.b64decode(good.split()[0])
    body = {
        "empty-ish": "   ",
        "not base64": good[:100] + "!" + good[101:],
        "short": base64.b64encode(raw[:-1]).decode(),
        "long": base64.b64encode(raw + b"\0").decode(),
        "words": base64.b64encode(struct.pack("<I", 32) + raw[4:]).decode(),
        "n0inv": tampered(good, 4),
        "rr": tampered(good, 8 + 256 + 17),
        "exponent": base64.b64encode(raw[:-4] + struct.pack("<I", 17)).decode(),
        "top bit": tampered(good, 8 + 255, 0x80),
        "pem": "-----BEGIN PUBLIC KEY-----",
        "two lines": good + "\n" + good,
        "control char": good + "\x1b[31m",
    }[why]
    before = len(key_pairs(a))
    key_name = name("bad")
    e = api_error(a.import_key_pair, models.ImportKeyPairRequest(key_pair_name=key_name, public_key_body=body))
    assert (e.status_code, e.code) == (400, "InvalidParameter.PublicKeyBody"), e.message
    assert len(key_pairs(a)) == before
    assert key_pairs(a, key_pair_name=key_name) == []


def test_names_follow_the_vendor_rule_and_are_unique(a, b):
    for bad in ["a", "1abc", "_x", "has space", "dot.name", "x" * 129, "http://x", "é-x"]:
        e = api_error(a.create_key_pair, models.CreateKeyPairRequest(key_pair_name=bad))
        assert (e.status_code, e.code) == (400, "InvalidParameter.KeyPairName"), bad
        e = api_error(a.import_key_pair, models.ImportKeyPairRequest(key_pair_name=bad,
                                                                     public_key_body=fresh_public_key()))
        assert e.code == "InvalidParameter.KeyPairName", bad
    e = api_error(a.create_key_pair, models.CreateKeyPairRequest())
    assert e.code == "MissingParameter.KeyPairName"
    taken = name("手机")
    import_key(a, taken)
    before = len(key_pairs(a))
    e = api_error(a.create_key_pair, models.CreateKeyPairRequest(key_pair_name=taken))
    assert (e.status_code, e.code) == (409, "InvalidKeyPairName.Duplicate")
    e = api_error(a.import_key_pair, models.ImportKeyPairRequest(key_pair_name=taken,
                                                                 public_key_body=fresh_public_key()))
    assert e.code == "InvalidKeyPairName.Duplicate"
    assert len(key_pairs(a)) == before
    # Another account may use the name.
    import_key(b, taken)


def test_describe_key_pairs_pages_and_filters(a):
    tag = uuid.uuid4().hex[:8]
    made = [import_key(a, f"page-{tag}-{n}") for n in range(5)]
    found = key_pairs(a, key_pair_name=f"page-{tag}", max_results=2)
    assert [k.key_pair_id for k in found] == made[::-1], "newest first"
    first = a.describe_key_pairs(models.DescribeKeyPairsRequest(key_pair_name=f"page-{tag}", max_results=2)).body
    assert first.total_count == 5 and len(first.data) == 2 and first.next_token
    assert all(PLAIN_TIME.match(k.gmt_created) for k in found)
    by_id = key_pairs(a, key_pair_ids=[made[1], made[3], "kp-0000000000000000"])
    assert sorted(k.key_pair_id for k in by_id) == sorted([made[1], made[3]])
    assert a.describe_key_pairs(models.DescribeKeyPairsRequest()).body.total_count >= 5
    for bad in [0, 101]:
        e = api_error(a.describe_key_pairs, models.DescribeKeyPairsRequest(max_results=bad))
        assert e.code == "InvalidParameter.MaxResults"
    e = api_error(a.describe_key_pairs, models.DescribeKeyPairsRequest(
        key_pair_name=f"page-{tag}-1", next_token=first.next_token))
    assert e.code == "InvalidParameter.NextToken", "a token is for its own filters"
    e = api_error(a.describe_key_pairs, models.DescribeKeyPairsRequest(key_pair_ids=[f"kp-{n}" for n in range(101)]))
    assert e.code == "InvalidParameter.KeyPairIds"


def test_modify_and_delete_key_pairs(a, b):
    one, two = import_key(a, name("one")), import_key(a, name("two"))
    new = name("renamed")
    a.modify_key_pair_name(models.ModifyKeyPairNameRequest(key_pair_id=one, new_key_pair_name=new))
    assert [k.key_pair_name for k in key_pairs(a, key_pair_ids=[one])] == [new]
    two_name = key_pairs(a, key_pair_ids=[two])[0].key_pair_name
    e = api_error(a.modify_key_pair_name, models.ModifyKeyPairNameRequest(key_pair_id=one,
                                                                         new_key_pair_name=two_name))
    assert (e.status_code, e.code) == (409, "InvalidKeyPairName.Duplicate")
    e = api_error(a.modify_key_pair_name, models.ModifyKeyPairNameRequest(key_pair_id=one, new_key_pair_name="9x"))
    assert e.code == "InvalidParameter.NewKeyPairName"
    e = api_error(a.modify_key_pair_name, models.ModifyKeyPairNameRequest(key_pair_id="kp-0000000000000000",
                                                                         new_key_pair_name=name()))
    assert (e.status_code, e.code) == (404, "InvalidKeyPairId.NotFound")
    # Another account's key pair is unknown to B, and stays as it was.
    e = api_error(b.modify_key_pair_name, models.ModifyKeyPairNameRequest(key_pair_id=one,
                                                                         new_key_pair_name=name()))
    assert e.code == "InvalidKeyPairId.NotFound"
    e = api_error(b.delete_key_pairs, models.DeleteKeyPairsRequest(key_pair_ids=[one]))
    assert (e.status_code, e.code) == (404, "InvalidKeyPairIds.NotFound")
    # All or none: one unknown id deletes nothing.
    e = api_error(a.delete_key_pairs, models.DeleteKeyPairsRequest(key_pair_ids=[one, "kp-0000000000000000", two]))
    assert e.code == "InvalidKeyPairIds.NotFound"
    assert len(key_pairs(a, key_pair_ids=[one, two])) == 2
    e = api_error(a.delete_key_pairs, models.DeleteKeyPairsRequest())
    assert e.code == "MissingParameter.KeyPairIds"
    a.delete_key_pairs(models.DeleteKeyPairsRequest(key_pair_ids=[one, two, one]))
    assert key_pairs(a, key_pair_ids=[one, two]) == []
    # The name of a deleted key pair is free again.
    import_key(a, new)


# --- attaching key pairs -----------------------------------------------------------------------

def test_attach_replace_detach_and_the_instance_model(a, b):
    gid, phones = create_group(a, 3, name="keyed")
    first, second = import_key(a, name("first")), import_key(a, name("second"))
    r = a.attach_key_pair(models.AttachKeyPairRequest(key_pair_id=first, instance_ids=phones[:2])).body.data
    assert (r.key_pair_id, r.attached_instance_ids, r.fail_count, r.total_count) == (first, phones[:2], 0, 2)
    models_ = describe_instances(a, phones)
    assert [models_[p].key_pair_id for p in phones] == [first, first, None]
    # One key pair per phone: attaching another replaces it.
    a.attach_key_pair(models.AttachKeyPairRequest(key_pair_id=second, instance_ids=[phones[1]]))
    assert key_of(a, phones[1]) == second

    # The KeyPairId filters.
    def listed(key):
        r = a.describe_android_instances(models.DescribeAndroidInstancesRequest(key_pair_id=key)).body
        return sorted(m.android_instance_id for m in r.instance_model), r.total_count
    assert listed(first) == ([phones[0]], 1)
    assert listed(second) == ([phones[1]], 1)
    assert listed("kp-0000000000000000") == ([], 0)
    groups = a.describe_android_instance_groups(models.DescribeAndroidInstanceGroupsRequest(key_pair_id=first)).body
    assert [g.instance_group_id for g in groups.instance_group_model] == [gid]
    assert a.describe_android_instance_groups(models.DescribeAndroidInstanceGroupsRequest(
        key_pair_id="kp-0000000000000000")).body.total_count == 0

    # Detach: phones without that key pair count as failed, the others lose it.
    r = a.detach_key_pair(models.DetachKeyPairRequest(key_pair_id=first, instance_ids=phones)).body.data
    assert (r.detached_instance_ids, r.fail_count, r.total_count) == ([phones[0]], 2, 3)
    assert [describe_instances(a, phones)[p].key_pair_id for p in phones] == [None, second, None]

    # Deleting an attached key pair detaches it everywhere.
    a.delete_key_pairs(models.DeleteKeyPairsRequest(key_pair_ids=[second]))
    assert key_of(a, phones[1]) is None
    assert listed(second) == ([], 0)


def test_attach_refusals_change_nothing(a, b):
    _, phones = create_group(a, 2, name="refuse")
    _, theirs = create_group(b, 1, name="theirs")
    mine, their_key = import_key(a), import_key(b)
    cases = [
        (dict(key_pair_id="kp-0000000000000000", instance_ids=phones), 404, "InvalidKeyPairId.NotFound"),
        (dict(key_pair_id=their_key, instance_ids=phones), 404, "InvalidKeyPairId.NotFound"),
        (dict(key_pair_id=mine, instance_ids=[phones[0], theirs[0]]), 404, "InvalidInstanceIds.NotFound"),
        (dict(key_pair_id=mine, instance_ids=[phones[0], "acp-0000000000000000"]), 404, "InvalidInstanceIds.NotFound"),
        (dict(key_pair_id=mine, instance_ids=[phones[0]] + [f"acp-{n:016d}" for n in range(50)]), 400,
         "InvalidParameter.InstanceIds"),
        (dict(key_pair_id=mine), 400, "MissingParameter.InstanceIds"),
        (dict(instance_ids=phones), 400, "MissingParameter.KeyPairId"),
    ]
    for kw, status, code in cases:
        for action, request in [(a.attach_key_pair, models.AttachKeyPairRequest),
                                (a.detach_key_pair, models.DetachKeyPairRequest)]:
            e = api_error(action, request(**kw))
            assert (e.status_code, e.code) == (status, code), (kw, e.message)
    assert [describe_instances(a, phones)[p].key_pair_id for p in phones] == [None, None]
    assert key_of(b, theirs[0]) is None
    # 50 phones is the most: the limit counts ids, so 50 unknown ones are "not found", not "too many".
    e = api_error(a.attach_key_pair, models.AttachKeyPairRequest(
        key_pair_id=mine, instance_ids=[f"acp-{n:016d}" for n in range(50)]))
    assert e.code == "InvalidInstanceIds.NotFound"


def test_create_group_with_a_key_pair(a, b):
    kid = import_key(a)
    r = a.create_android_instance_group(models.CreateAndroidInstanceGroupRequest(
        biz_region_id="cn-hangzhou", image_id="imgc-simandroid140000", instance_group_spec="acp.basic.small",
        number_of_instances=2, amount=2, key_pair_id=kid)).body
    phones = [i for g in r.instance_group_infos for i in g.instance_ids]
    assert len(phones) == 4
    assert {describe_instances(a, phones)[p].key_pair_id for p in phones} == {kid}
    # An unknown key pair, or another account's, creates nothing.
    before = a.describe_android_instance_groups(models.DescribeAndroidInstanceGroupsRequest()).body.total_count
    for bad in ["kp-0000000000000000", import_key(b)]:
        e = api_error(a.create_android_instance_group, models.CreateAndroidInstanceGroupRequest(
            biz_region_id="cn-hangzhou", image_id="imgc-simandroid140000", instance_group_spec="acp.basic.small",
            number_of_instances=1, key_pair_id=bad))
        assert (e.status_code, e.code) == (404, "InvalidKeyPairId.NotFound")
    after = a.describe_android_instance_groups(models.DescribeAndroidInstanceGroupsRequest()).body.total_count
    assert after == before


# --- ADB endpoints -----------------------------------------------------------------------------

def test_start_list_stop_adb(a):
    _, phones = create_group(a, 3, name="adb")
    a.start_instance_adb(models.StartInstanceAdbRequest(instance_ids=phones))
    listed = endpoints(a, instance_ids=phones)
    assert set(listed) == set(phones)
    ports = {p: int(listed[p].external_port) for p in phones}
    assert len(set(ports.values())) == 3 and all(LOW <= port <= HIGH for port in ports.values())
    for d in listed.values():
        assert (d.external_ip, d.internal_port, d.ip_protocol) == (PUBLIC_HOST, "5555", "TCP")
        assert PLAIN_TIME.match(d.gmt_created) and PLAIN_TIME.match(d.gmt_modified)
    # Filters that match, and ones no endpoint here has.
    assert set(endpoints(a, instance_ids=phones, external_ip=PUBLIC_HOST, internal_port="5555",
                         ip_protocol="tcp")) == set(phones)
    for kw in [dict(external_ip="203.0.113.9"), dict(internal_port="5037"), dict(ip_protocol="UDP"),
               dict(internal_ip="10.0.0.1")]:
        assert endpoints(a, instance_ids=phones, **kw) == {}, kw
    page = a.list_instance_adb_attributes(models.ListInstanceAdbAttributesRequest(
        instance_ids=phones, max_results=2)).body
    assert (page.total_count, page.max_results, len(page.data)) == (3, 2, 2) and page.next_token
    rest = a.list_instance_adb_attributes(models.ListInstanceAdbAttributesRequest(
        instance_ids=phones, max_results=2, next_token=page.next_token)).body
    assert {d.instance_id for d in page.data + rest.data} == set(phones) and not rest.next_token
    # Starting again keeps the ports; a stopped endpoint is not listed and keeps its port.
    a.start_instance_adb(models.StartInstanceAdbRequest(instance_ids=phones))
    assert {p: int(d.external_port) for p, d in endpoints(a, instance_ids=phones).items()} == ports
    a.stop_instance_adb(models.StopInstanceAdbRequest(instance_ids=[phones[0]]))
    a.stop_instance_adb(models.StopInstanceAdbRequest(instance_ids=[phones[0]]))
    assert set(endpoints(a, instance_ids=phones)) == set(phones[1:])
    a.start_instance_adb(models.StartInstanceAdbRequest(instance_ids=[phones[0]]))
    assert int(endpoints(a, instance_ids=[phones[0]])[phones[0]].external_port) == ports[phones[0]]


def test_adb_refusals_change_nothing(a, b):
    _, phones = create_group(a, 1, name="adbno")
    _, theirs = create_group(b, 1, name="adbtheirs")
    b.start_instance_adb(models.StartInstanceAdbRequest(instance_ids=theirs))
    cases = [
        ([phones[0], theirs[0]], 404, "InvalidInstanceIds.NotFound"),
        ([phones[0], "acp-0000000000000000"], 404, "InvalidInstanceIds.NotFound"),
        ([phones[0]] + [f"acp-{n:016d}" for n in range(100)], 400, "InvalidParameter.InstanceIds"),
        (None, 400, "MissingParameter.InstanceIds"),
    ]
    for ids, status, code in cases:
        for action, request in [(a.start_instance_adb, models.StartInstanceAdbRequest),
                                (a.stop_instance_adb, models.StopInstanceAdbRequest)]:
            e = api_error(action, request(instance_ids=ids))
            assert (e.status_code, e.code) == (status, code), ids
    assert endpoints(a, instance_ids=phones) == {}
    # B's endpoint is B's: A neither sees nor stops it.
    assert endpoints(a, instance_ids=theirs) == {}
    assert set(endpoints(b, instance_ids=theirs)) == set(theirs)
    e = api_error(a.list_instance_adb_attributes, models.ListInstanceAdbAttributesRequest(
        instance_ids=[f"acp-{n:016d}" for n in range(101)]))
    assert e.code == "InvalidParameter.InstanceIds"
    for bad in [0, 101]:
        e = api_error(a.list_instance_adb_attributes, models.ListInstanceAdbAttributesRequest(max_results=bad))
        assert e.code == "InvalidParameter.MaxResults"


def test_set_adb_secure(a, b):
    _, phones = create_group(a, 2, name="secure")
    _, theirs = create_group(b, 1, name="secure-b")
    r = a.set_adb_secure(models.SetAdbSecureRequest(instance_ids=phones, status=1)).body.data
    assert (r.instance_ids, r.fail_count, r.total_count) == (phones, 0, 2)
    r = a.set_adb_secure(models.SetAdbSecureRequest(instance_ids=phones, status=0)).body.data
    assert r.total_count == 2
    for kw, code in [(dict(instance_ids=phones, status=2), "InvalidParameter.Status"),
                     (dict(instance_ids=phones), "MissingParameter.Status"),
                     (dict(status=1), "MissingParameter.InstanceIds"),
                     (dict(instance_ids=[phones[0]] + [f"acp-{n:016d}" for n in range(50)], status=1),
                      "InvalidParameter.InstanceIds"),
                     (dict(instance_ids=[phones[0], theirs[0]], status=1), "InvalidInstanceIds.NotFound")]:
        e = api_error(a.set_adb_secure, models.SetAdbSecureRequest(**kw))
        assert e.code == code, kw


def test_start_is_refused_on_an_unavailable_phone(a):
    _, phones = create_group(a, 2, name="down")
    inject_fault(a, phones[0], "RebootInstance", error_code="InstanceUnreachable", count=1)
    r = a.reboot_android_instances_in_group(models.RebootAndroidInstancesInGroupRequest(
        android_instance_ids=[phones[0]])).body
    wait_batch(a, r.request_id)
    assert describe_instances(a, [phones[0]])[phones[0]].android_instance_status == "UNAVAILABLE"
    e = api_error(a.start_instance_adb, models.StartInstanceAdbRequest(instance_ids=[phones[1], phones[0]]))
    assert (e.status_code, e.code) == (409, "IncorrectStatus")
    assert endpoints(a, instance_ids=phones) == {}, "the other phone was not started either"


def test_ports_are_unique_under_concurrent_starts(a):
    _, phones = create_group(a, 12, name="many")
    errors = []

    def start(phone):
        try:
            a.start_instance_adb(models.StartInstanceAdbRequest(instance_ids=[phone]))
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    threads = [threading.Thread(target=start, args=(p,)) for p in phones]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    everything = endpoints(a)
    ports = [int(d.external_port) for d in everything.values()]
    assert set(phones) <= set(everything)
    assert len(ports) == len(set(ports)), "a port given twice"


def test_no_gateway_means_no_endpoints(client):
    """The session's server runs without --adb-ports."""
    _, phones = create_group(client, 1, name="nogw")
    e = api_error(client.start_instance_adb, models.StartInstanceAdbRequest(instance_ids=phones))
    assert (e.status_code, e.code) == (403, "OperationDenied.AdbGatewayNotConfigured")
    assert endpoints(client, instance_ids=phones) == {}
    # Everything else about key pairs works without a gateway.
    kid = import_key(client)
    client.attach_key_pair(models.AttachKeyPairRequest(key_pair_id=kid, instance_ids=phones))
    client.stop_instance_adb(models.StopInstanceAdbRequest(instance_ids=phones))


def test_a_full_range_starts_nothing(workdir):
    low, high = free_port_range(2)
    s = Server(workdir / "adb-small", extra_args=["--adb-ports", f"{low}-{high}", "--adb-listen", "127.0.0.1"]).start()
    try:
        c = s.client()
        _, phones = create_group(c, 3, name="full")
        e = api_error(c.start_instance_adb, models.StartInstanceAdbRequest(instance_ids=phones))
        assert (e.status_code, e.code) == (409, "InsufficientResource.AdbPorts")
        assert endpoints(c) == {}
        c.start_instance_adb(models.StartInstanceAdbRequest(instance_ids=phones[:2]))
        listed = endpoints(c)
        assert sorted(int(d.external_port) for d in listed.values()) == [low, high]
        # Without --adb-public-host the listen address is reported.
        assert {d.external_ip for d in listed.values()} == {"127.0.0.1"}
        # A deleted phone's port goes to the next phone that needs one.
        gid = describe_instances(c, [phones[0]])[phones[0]].android_instance_group_id
        c.delete_android_instance_group(models.DeleteAndroidInstanceGroupRequest(instance_group_ids=[gid]))
        wait_for(lambda: not describe_instances(c, phones), what="the phones deleted")
        _, later = create_group(c, 1, name="later")
        c.start_instance_adb(models.StartInstanceAdbRequest(instance_ids=later))
        assert low <= int(endpoints(c)[later[0]].external_port) <= high
    finally:
        s.stop()


def test_an_account_has_at_most_max_key_pairs(workdir):
    s = Server(workdir / "adb-few-keys", extra_args=["--max-key-pairs", "2"]).start()
    try:
        c = s.client()
        other = s.client(key=s.create_key("acct-few-keys-b"))
        first = import_key(c)
        c.create_key_pair(models.CreateKeyPairRequest(key_pair_name=name()))
        for make in (lambda: import_key(c),
                     lambda: c.create_key_pair(models.CreateKeyPairRequest(key_pair_name=name()))):
            e = api_error(make)
            assert (e.status_code, e.code) == (400, "QuotaExceeded.KeyPairs"), (e.status_code, e.code)
            assert "at most 2 key pairs" in e.message
        assert len(key_pairs(c)) == 2
        # Another account has its own count; a deletion makes room.
        import_key(other)
        c.delete_key_pairs(models.DeleteKeyPairsRequest(key_pair_ids=[first]))
        import_key(c)
        assert len(key_pairs(c)) == 2
    finally:
        s.stop()


# --- the signal that ends live connections -----------------------------------------------------

def rung(server, reason):
    """How many phones the node's revocation signal was rung for with `reason` so far."""
    text = requests.get(f"http://{server.endpoint}/metrics", headers={"Authorization": f"Bearer {TOKEN}"},
                        timeout=10).text
    for line in text.splitlines():
        m = re.match(r'^cloudphone_adb_revocations_total\{reason="(\w+)"\} (\S+)$', line)
        if m and m.group(1) == reason:
            return float(m.group(2))
    return 0.0


def test_the_calls_that_take_access_away_ring_for_their_phones(gw, a):
    """Each call rings the in-process signal (the gateway's cue to drop live connections) for
    the phones whose access it changed, and only those: counted in /metrics."""
    gid, phones = create_group(a, 3, name="ring")
    kid = import_key(a)

    def delta(reason, call_, *args):
        before = rung(gw, reason)
        call_(*args)
        return rung(gw, reason) - before

    a.start_instance_adb(models.StartInstanceAdbRequest(instance_ids=phones))
    stop = models.StopInstanceAdbRequest(instance_ids=phones[:2])
    assert delta("AdbStopped", a.stop_instance_adb, stop) == 2
    assert delta("AdbStopped", a.stop_instance_adb, stop) == 0, "already stopped"
    secure = models.SetAdbSecureRequest(instance_ids=phones[:2], status=1)
    assert delta("SecureChanged", a.set_adb_secure, secure) == 2
    assert delta("SecureChanged", a.set_adb_secure, secure) == 0, "no change"
    attach = models.AttachKeyPairRequest(key_pair_id=kid, instance_ids=phones[:2])
    assert delta("KeyAttached", a.attach_key_pair, attach) == 2
    assert delta("KeyAttached", a.attach_key_pair, attach) == 0, "the same key again"
    detach = models.DetachKeyPairRequest(key_pair_id=kid, instance_ids=[phones[0], phones[2]])
    assert delta("KeyDetached", a.detach_key_pair, detach) == 1
    delete = models.DeleteKeyPairsRequest(key_pair_ids=[kid])
    assert delta("KeyDeleted", a.delete_key_pairs, delete) == 1
    stop_phone = models.StopAndroidInstanceRequest(android_instance_ids=[phones[2]])
    assert delta("PhoneStopped", a.stop_android_instance, stop_phone) == 1
    delete_group = models.DeleteAndroidInstanceGroupRequest(instance_group_ids=[gid])
    assert delta("PhoneDeleted", a.delete_android_instance_group, delete_group) == 3
    # A refused call rings nothing.
    before = rung(gw, "AdbStopped")
    api_error(a.stop_instance_adb, models.StopInstanceAdbRequest(instance_ids=["acp-0000000000000000"]))
    assert rung(gw, "AdbStopped") == before
