"""Input on a simulated phone through the official SDK: the shell's `input` drives the phone's
screen as a viewer's touches do (a tap on a launcher icon opens its app), `dumpsys input` reads
it back, and CreateScreenshot shows the result."""

import json

import requests
from alibabacloud_eds_aic20230930 import models

from conftest import create_group, wait_batch, tasks_of
from test_screens_and_images import decode_png

# Settings is the launcher's fifth icon (its apps sorted: camera2, chrome, contacts, documentsui,
# settings): the first of the second row, centred here on a 720x1280 phone.
SETTINGS_ICON = (108, 528)


def sync(client, instance, command):
    r = client.run_sync_command(models.RunSyncCommandRequest(
        instance_ids=[instance], command_content=command, wait_time=3000)).body
    (d,) = r.data
    assert d.invocation_status == "Success", d
    return d.output


def screen(client, instance):
    r = client.create_screenshot(models.CreateScreenshotRequest(android_instance_id_list=[instance])).body
    wait_batch(client, r.request_id)
    (t,) = tasks_of(client, invoke_id=r.request_id, level=2)
    assert t.task_status == "Finished", t.error_msg
    w, h, raw = decode_png(requests.get(json.loads(t.result)["Url"], timeout=10).content)
    assert (w, h) == (720, 1280)
    return raw[(1 + 3 * w) * 40:]  # below the status bar and its clock


def test_input_tap_opens_an_app_and_dumpsys_reads_it_back(client):
    _, (phone,) = create_group(client, 1, name="input")
    home = screen(client, phone)
    x, y = SETTINGS_ICON
    out = sync(client, phone, f"input tap {x} {y} && input text 'hi%sthere' && dumpsys input && dumpsys window")
    lines = out.splitlines()
    assert lines[lines.index("Recent input (newest last):") + 1:][:2] == [f"  tap {x} {y}", "  text hi there"]
    assert "  mCurrentFocus=Window{0 u0 com.android.settings}" in lines, out
    shown = screen(client, phone)
    assert shown != home
    # Home goes back to the launcher; the input log keeps the order.
    out = sync(client, phone, "input keyevent KEYCODE_HOME; dumpsys window; dumpsys input")
    assert "mCurrentFocus=Window{0 u0 com.android.launcher3}" in out
    assert out.rstrip().endswith("  keyevent 3")
