"""Live screens of docker phones, at the backend's seam (`Backend::open_screen`): a server runs
the phones (the `fleet` of test_docker_backend.py, with `[scrcpy]` in its backends file), and the
TEST TOOL crates/backends/examples/screen_probe.rs opens a phone's screen through the docker
backend as the stream server does, plays inputs into it and reports the frames. What the phone
received is read back through the API (RunCommand `dumpsys input`), as a user would.

The test phone (tests/fixtures/test-adbd) runs no Android: its `app_process` is a fake scrcpy
server that checks that the real scrcpy-server v3.3.4 jar was pushed (scripts/scrcpy-server takes
it from PyPI) and speaks scrcpy's protocol with an I_PCM H.264 stream; its `screencap` draws the
last touches and the typed text, its `input` records what it is told."""

import json
import re
import subprocess

import pytest

from conftest import DOCKER_HOST, ROOT, STORE, Server, wait_for
from conftest import run_shell as sh
from test_docker_backend import ANDROID_12, create, docker_fleet
from test_screens_and_images import decode_png

SCRCPY_SERVER = ROOT / "target" / "scrcpy" / "scrcpy-server-v3.3.4"
SCRCPY_SHA256 = "8588238c9a5a00aa542906b6ec7e6d5541d9ffb9b5d0f6e1bc0e365e2303079e"
PROBE = ROOT / "target" / "debug" / "examples" / "screen_probe"
# Android's SPS, PPS and IDR slice.
SPS, PPS, IDR = 7, 8, 5
docker_phones = pytest.mark.skipif(STORE == "postgres", reason="the docker phones' tests run in the SQLite pass; test_farm.py drives docker hosts over PostgreSQL")


@pytest.fixture(scope="module")
def scrcpy_server():
    if not SCRCPY_SERVER.is_file():
        pytest.fail(f"{SCRCPY_SERVER} is missing: scripts/scrcpy-server fetches it", pytrace=False)
    return SCRCPY_SERVER


@pytest.fixture(scope="module")
def probe():
    subprocess.run(["cargo", "build", "--quiet", "-p", "cloudphone-backends", "--example", "screen_probe"],
                   cwd=ROOT, check=True)
    return PROBE


@pytest.fixture(scope="module")
def fleet(workdir, phone_image, adb_server, scrcpy_server):
    with docker_fleet(workdir / "docker-screen", phone_image, adb_server,
                      extra_config=f'\n[scrcpy]\nserver = "{scrcpy_server}"\n') as f:
        yield f


def run_probe(probe, fleet, phone, *steps, scrcpy=None, max_size=320, dump=None):
    """What the probe reported: the `open` line, the frames, the acks, in order."""
    low, high = fleet["adb_ports"]
    args = [str(probe), "--docker", DOCKER_HOST, "--adb-port", str(fleet["adb_port"]),
            "--prefix", fleet["prefix"], "--adb-ports", f"{low}-{high}", "--image", ANDROID_12,
            "--instance", phone, "--max-size", str(max_size), "--fps", "10"]
    if scrcpy:
        args += ["--scrcpy", str(scrcpy)]
    if dump:
        args += ["--dump", str(dump)]
    r = subprocess.run(args + list(steps), capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    opened = lines[0]["open"]
    frames = [l["frame"] for l in lines if "frame" in l]
    acks = [l["ack"] for l in lines if "ack" in l]
    return opened, frames, acks, lines


def recorded(client, phone):
    """The lines of the test phone's `dumpsys input`."""
    out, code = sh(client, phone, "dumpsys input")
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0] == "Recent input (newest last):", out
    return [l.strip() for l in lines[1:]]


def scaled(v, frame, device):
    """A frame coordinate on the device, rounded as the backends scale them."""
    return min((v * device + frame // 2) // frame, device - 1)


def pixel(png, x, y):
    """The RGB of one pixel of an 8-bit RGB PNG (its rows unfiltered)."""
    w, h, raw = decode_png(png)
    stride, prev, row = 3 * w, bytearray(3 * w), None
    for r in range(y + 1):
        kind, line = raw[r * (stride + 1)], bytearray(raw[r * (stride + 1) + 1:(r + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - 3] if i >= 3 else 0
            b = prev[i]
            c = prev[i - 3] if i >= 3 else 0
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        prev, row = line, line
    return tuple(row[3 * x:3 * x + 3])


@docker_phones
def test_scrcpy_sends_h264_and_takes_touch_text_and_keys(fleet, probe, scrcpy_server):
    client = fleet["client"]
    _, (phone,) = create(client, 1, name="scrcpy")
    opened, frames, acks, _ = run_probe(
        probe, fleet, phone,
        "frames:3", "tap:92,160", "long:30,300,700", "swipe:20,100,150,100,400", "text:hi there",
        "key:back", "key:home", "keyframe", "frames:2", "rotate", "frames:4",
        scrcpy=scrcpy_server, max_size=320)
    assert opened == {"codec": "h264", "device": [360, 640]}
    assert all(a["ok"] for a in acks), acks
    # scrcpy's size for 360x640 at max_size 320: the long side 320, the short one rounded to 8.
    first = frames[0]
    assert (first["codec"], first["w"], first["h"], first["rotated"]) == ("h264", 184, 320, False)
    # Every key frame can start a decoder: the config (SPS, PPS) is merged in front of it.
    for f in frames:
        assert f["key"] and f["nals"][:3] == [SPS, PPS, IDR], f
    # The device turned: frames come at the new size, from the new SPS.
    turned = [f for f in frames if f["rotated"]]
    assert turned and all((f["w"], f["h"]) == (320, 184) for f in turned), frames[-4:]
    assert frames[-1]["rotated"]

    x, y = lambda v: scaled(v, 184, 360), lambda v: scaled(v, 320, 640)
    lines = recorded(client, phone)
    assert f"tap {x(92)} {y(160)}" in lines and (x(92), y(160)) == (180, 320), lines
    long_press = [l for l in lines if l.startswith(f"swipe {x(30)} {y(300)} {x(30)} {y(300)} ")]
    assert long_press and int(long_press[0].split()[-1]) >= 500, lines
    swipe = [l for l in lines if l.startswith(f"swipe {x(20)} {y(100)} {x(150)} {y(100)} ")]
    assert swipe and int(swipe[0].split()[-1]) >= 300, lines
    assert ["text hi there", "keyevent 4", "keyevent 3", "rotate 1"] == \
        [l for l in lines if re.match(r"(text|keyevent|rotate) ", l)], lines
    # The real jar was pushed (the fake server refuses any other), and kept for next time.
    out, _ = sh(client, phone, "sha256sum /data/local/tmp/cloudphone-scrcpy-3.3.4.jar")
    assert out.split()[0] == SCRCPY_SHA256


@docker_phones
def test_scrcpy_that_cannot_start_falls_back_to_screencap(fleet, probe, scrcpy_server):
    """A phone whose app_process fails (here: the test phone's applet shadowed, first on adbd's
    PATH) still has a screen."""
    client = fleet["client"]
    _, (phone,) = create(client, 1, name="noscrcpy")
    broken = "/data/system/test-adbd/bin/app_process"
    assert sh(client, phone, f"rm {broken} && printf '#!/bin/sh\\necho no Java here; exit 1\\n' > {broken} "
                             f"&& chmod 755 {broken}")[1] == 0
    opened, frames, acks, _ = run_probe(probe, fleet, phone, "tap:10,20", scrcpy=scrcpy_server)
    assert opened["codec"] == "png" and frames[0]["codec"] == "png"
    assert all(a["ok"] for a in acks) and "tap 10 20" in recorded(client, phone)


@docker_phones
def test_screencap_frames_and_input_commands_without_scrcpy(workdir, phone_image, adb_server, probe, tmp_path):
    with docker_fleet(workdir / "docker-screencap", phone_image, adb_server) as fleet:
        client = fleet["client"]
        _, (phone,) = create(client, 1, name="screencap")
        opened, frames, acks, lines = run_probe(
            probe, fleet, phone,
            "tap:100,200", "swipe:50,500,300,500,300", "text:hello world", "text:héllo", "key:back",
            "wait:600", max_size=1280, dump=tmp_path)
        assert opened == {"codec": "png", "device": [360, 640]}
        assert all(f["codec"] == "png" and f["key"] and (f["w"], f["h"]) == (360, 640) for f in frames)
        # Each touch event is acknowledged (a tap is two, the swipe six); the accented text is
        # refused, as `input text` cannot type it.
        refused = [a for a in acks if not a["ok"]]
        assert len(acks) == 11 and len(refused) == 1, acks
        assert "printable ASCII" in refused[0]["error"], refused
        # A frame says which input it shows: the last one finished before its capture.
        shown = [tuple(f["shows"]) for f in frames if f["shows"]]
        assert shown and shown[-1] == (1, acks[-1]["seq"]), frames

        lines = recorded(client, phone)
        assert lines[0] == "tap 100 200" and lines[2:] == ["text hello world", "keyevent 4"], lines
        assert re.fullmatch(r"swipe 50 500 300 500 \d+", lines[1]) and int(lines[1].split()[-1]) >= 250, lines

        # The last frame shows the tap as the test phone draws it: magenta.
        png = (tmp_path / "last.png").read_bytes()
        assert pixel(png, 100, 200) == (255, 0, 255)


def test_a_jar_that_is_not_scrcpy_3_3_4_stops_the_server_at_start(workdir, tmp_path):
    jar = tmp_path / "scrcpy-server-v3.3.4"
    jar.write_bytes(b"PK\x03\x04 not the server")
    config = tmp_path / "backends.toml"
    config.write_text(f'[scrcpy]\nserver = "{jar}"\n')
    node = Server(workdir / "bad-scrcpy", extra_args=["--backends", str(config)])
    with pytest.raises(RuntimeError, match="server exited"):
        node.start()
    log = (workdir / "bad-scrcpy.log").read_text()
    assert "is not the scrcpy server 3.3.4" in log and SCRCPY_SHA256 in log, log


@docker_phones
def test_a_docker_phone_streams_h264_through_the_websocket_and_takes_a_tap(fleet, scrcpy_server):
    """The whole path a browser takes, for a docker phone: a ticket from
    BatchGetAcpConnectionTicket, the stream's WebSocket, H.264 key frames with their config in
    front (kind 3 in the frame header), a tap from the controlling viewer, and the test phone
    recording it at the device's coordinates; SessionStatus says `connect` meanwhile."""
    from test_streams import Viewer, session_status, ticket
    client, server = fleet["client"], fleet["server"]
    _, (phone,) = create(client, 1, name="ws-scrcpy")
    viewer = Viewer(server, phone, ticket(client, phone))
    try:
        hello = viewer.text_of("hello")
        assert (hello["role"], hello["codec"]) == ("control", "h264"), hello
        assert hello["device"] == [360, 640], hello
        (kind, _, width, height, *_), payload = viewer.frame()
        assert kind == 3, "the first frame a viewer gets is a key frame"
        # Annex B: the SPS first, then the PPS and the IDR slice.
        nals = [payload[i + 3] & 0x1F for i in range(len(payload) - 3) if payload[i:i + 3] == b"\0\0\1"]
        assert nals[:3] == [SPS, PPS, IDR], nals[:6]
        assert session_status(client, phone) == "connect"
        # A tap at the middle of the frame lands at the middle of the device.
        for action in ("down", "up"):
            viewer.send(t="touch", seq=1 if action == "down" else 2, a=action,
                        x=width // 2, y=height // 2, w=width, h=height)
        x, y = scaled(width // 2, width, 360), scaled(height // 2, height, 640)
        wait_for(lambda: f"tap {x} {y}" in recorded(client, phone), timeout=20, what="the tap on the phone")
    finally:
        viewer.close()
    wait_for(lambda: session_status(client, phone) == "disConnect", timeout=30, what="the session ended")


@docker_phones
def test_a_viewer_without_a_video_decoder_gets_images_beside_an_h264_viewer(fleet, scrcpy_server):
    """`want: "png"` in the hello (a browser without WebCodecs): that viewer gets the phone's
    screencap frames while another viewer of the same phone keeps its H.264 stream, and its
    taps still land (through `input`, the image source's way)."""
    from test_streams import Viewer, ticket
    client, server = fleet["client"], fleet["server"]
    _, (phone,) = create(client, 1, name="ws-png")
    video = Viewer(server, phone, ticket(client, phone))
    images = None
    try:
        assert video.text_of("hello")["codec"] == "h264"
        assert video.frame()[0][0] == 3
        images = Viewer(server, phone, ticket(client, phone), want="png", timeout=30)
        hello = images.text_of("hello")
        assert (hello["role"], hello["codec"], hello["device"]) == ("view", "png", [360, 640]), hello
        (kind, _, width, height, *_), payload = images.frame()
        assert kind == 1 and payload[:8] == b"\x89PNG\r\n\x1a\n", (kind, payload[:8])
        # The H.264 viewer's stream goes on meanwhile.
        assert video.frame()[0][0] in (3, 4)
        # Control moves to the image viewer; its tap arrives through `input tap`.
        images.send(t="control", take=True)
        assert images.text_of("role")["role"] == "control"
        for seq, action in ((1, "down"), (2, "up")):
            images.send(t="touch", seq=seq, a=action, x=width // 4, y=height // 4, w=width, h=height)
        x, y = scaled(width // 4, width, 360), scaled(height // 4, height, 640)
        wait_for(lambda: f"tap {x} {y}" in recorded(client, phone), timeout=30, what="the image viewer's tap")
    finally:
        video.close()
        if images:
            images.close()
