"""The web console in a real browser: Debian's headless Chromium driven through WebDriver
(chromedriver) against the spawned server. Log in, see the fleet, filter the task center, open a
batch and its children, see a screenshot inline, watch a page update without a reload, and see
nothing of another account. Sessions end for good (plain HTTP, no browser needed): a logout ends
every copy of the cookie and the console's watch stream with it, and a cookie of a disabled key
or account does not work again once it is enabled."""

import json
import threading
import time

import pytest
import requests
from alibabacloud_eds_aic20230930 import models
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.support.ui import Select, WebDriverWait

from conftest import clear_faults, create_group, inject_fault, tasks_of, wait_batch, wait_for

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def chromium():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # The closed network refuses Chromium's own background connections: keep it to localhost.
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(flag)
    # A given driver path: Selenium Manager (which would download one) is never run.
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


@pytest.fixture(scope="module")
def browser():
    d = chromium()
    yield d
    d.quit()


def base(server):
    return f"http://{server.endpoint}/console"


def login(browser, server, key=None, succeeds=True):
    key_id, secret = key or server.key
    browser.delete_all_cookies()
    browser.get(base(server) + "/login")
    browser.find_element(By.ID, "access_key_id").send_keys(key_id)
    browser.find_element(By.ID, "access_key_secret").send_keys(secret)
    browser.find_element(By.ID, "sign-in").click()
    if succeeds:
        until(browser, lambda d: d.title.startswith("Fleet"), what="the fleet page after login")


def until(browser, predicate, timeout=30, what="the page"):
    # The live refresh swaps the page's elements under the test: a stale one is looked up again.
    return WebDriverWait(browser, timeout, poll_frequency=0.1,
                         ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)
                         ).until(lambda d: predicate(d), message=what)


def steady(check, tries=20):
    """Runs `check` (assertions over elements) again when the live refresh replaced an element
    it was reading."""
    for _ in range(tries - 1):
        try:
            return check()
        except StaleElementReferenceException:
            time.sleep(0.05)
    return check()


def rows(browser, css):
    return browser.find_elements(By.CSS_SELECTOR, css)


def test_pages_need_a_login_and_a_wrong_secret_is_refused(browser, server):
    r = requests.get(base(server) + "/tasks?Level=1", allow_redirects=False, timeout=10)
    assert r.status_code == 303 and r.headers["location"].startswith("/console/login?next=")
    bad = requests.post(base(server) + "/login", data={"access_key_id": server.key[0],
                                                        "access_key_secret": "wrong"}, timeout=10)
    assert bad.status_code == 401 and "InvalidAccessKey" in bad.text and "set-cookie" not in bad.headers
    assert bad.headers["x-frame-options"] == "DENY" and bad.headers["cache-control"] == "no-store"
    forged = requests.post(base(server) + "/login", headers={"Origin": "https://evil.example"},
                           data={"access_key_id": server.key[0], "access_key_secret": server.key[1]},
                           allow_redirects=False, timeout=10)
    assert forged.status_code == 403 and "set-cookie" not in forged.headers

    login(browser, server, key=(server.key[0], "wrong"), succeeds=False)
    assert "wrong" in until(browser, lambda d: d.find_element(By.ID, "login-error").text, what="the refusal")
    login(browser, server)
    cookie = browser.get_cookie("cloudphone_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and server.key[1] not in cookie["value"]

    browser.find_element(By.CSS_SELECTOR, "header form button").click()
    until(browser, lambda d: "/console/login" in d.current_url, what="the login page after signing out")
    browser.get(base(server))
    assert "/console/login" in browser.current_url


def test_the_fleet_shows_groups_and_instance_status(browser, server, client):
    group, ids = create_group(client, 3, name="consolefleet")
    login(browser, server)
    browser.get(base(server))
    def shown():
        assert "consolefleet" in browser.find_element(By.ID, f"group-{group}").text
        assert browser.find_element(By.CSS_SELECTOR, f"#instance-{ids[2]} .status").text == "RUNNING"
    steady(shown)
    # The page, already open, follows the stop on its own.
    client.stop_android_instance(models.StopAndroidInstanceRequest(android_instance_ids=[ids[2]]))
    until(browser, lambda d: d.find_element(By.CSS_SELECTOR, f"#instance-{ids[2]} .status").text == "STOPPED",
          what="the stopped phone shown STOPPED")
    steady(lambda: [browser.find_element(By.CSS_SELECTOR, f"#instance-{i} .status").text
                    for i in ids[:2]] == ["RUNNING", "RUNNING"] or pytest.fail("others not RUNNING"))
    client.start_android_instance(models.StartAndroidInstanceRequest(android_instance_ids=[ids[2]]))


def test_filter_the_task_center_and_drill_into_a_batch(browser, server, client):
    _, ids = create_group(client, 3, name="consolebatch")
    inject_fault(client, ids[1], "RebootInstance", error_code="OperationFailed", error_msg="fan stuck")
    try:
        r = client.reboot_android_instances_in_group(
            models.RebootAndroidInstancesInGroupRequest(android_instance_ids=ids)).body
        batch = wait_batch(client, r.request_id)
    finally:
        clear_faults(client)
    login(browser, server)
    browser.get(base(server) + "/tasks")
    browser.find_element(By.NAME, "InvokeId").send_keys(r.request_id)
    Select(browser.find_element(By.NAME, "Level")).select_by_value("1")
    browser.find_element(By.ID, "apply").click()
    until(browser, lambda d: "InvokeId=" in d.current_url, what="the filtered task center")
    def the_batch():
        found = rows(browser, "tr.task")
        assert [t.get_attribute("data-task-id") for t in found] == [batch.task_id]
        assert "PartFinished" in found[0].text
        assert found[0].find_element(By.CSS_SELECTOR, ".n-ok").text == "2"
        assert found[0].find_element(By.CSS_SELECTOR, ".n-failed").text == "1"
    steady(the_batch)

    Select(browser.find_element(By.NAME, "TaskStatus")).select_by_visible_text("Failed")
    Select(browser.find_element(By.NAME, "Level")).select_by_value("2")
    browser.find_element(By.ID, "apply").click()
    until(browser, lambda d: "TaskStatus=Failed" in d.current_url, what="the failed children")
    steady(lambda: [t.find_element(By.CSS_SELECTOR, "td:nth-child(4)").text
                    for t in rows(browser, "tr.task")] == [ids[1]] or pytest.fail("not only the failed child"))

    browser.get(base(server) + "/tasks?InvokeId=" + r.request_id + "&Level=1")
    until(browser, lambda d: d.find_element(By.LINK_TEXT, batch.task_id).click() or True, what="the batch link")
    until(browser, lambda d: d.title.startswith(batch.task_id), what="the batch page")
    assert browser.find_element(By.ID, "task-status").text == "PartFinished"
    children = {c.find_element(By.CSS_SELECTOR, "td:nth-child(2)").text: c for c in rows(browser, "tr.child")}
    assert set(children) == set(ids)
    failed = children[ids[1]]
    assert failed.find_element(By.CSS_SELECTOR, ".status").text == "Failed"
    assert failed.find_element(By.CSS_SELECTOR, ".error-code").text == "OperationFailed"
    assert failed.find_element(By.CSS_SELECTOR, ".error-msg").text == "fan stuck"
    ok = children[ids[0]]
    assert json.loads(ok.find_element(By.CSS_SELECTOR, ".result").text) == {"Success": True}

    bad = requests.get(base(server) + "/tasks?TaskStatus=Sleeping", cookies={
        "cloudphone_console": browser.get_cookie("cloudphone_console")["value"]}, timeout=10)
    assert bad.status_code == 400 and "InvalidParameter.TaskStatus" in bad.text


def test_a_screenshot_is_shown_inline(browser, server, client):
    _, ids = create_group(client, 1, name="consoleshot")
    r = client.create_screenshot(models.CreateScreenshotRequest(android_instance_id_list=ids)).body
    task_id = r.tasks[0].task_id
    wait_for(lambda: tasks_of(client, task_ids=[task_id])[0].task_status == "Finished", what="the screenshot")
    login(browser, server)
    browser.get(base(server) + f"/tasks/{task_id}")
    img = browser.find_element(By.ID, "screenshot")
    until(browser, lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img),
          what="the screenshot loaded")
    assert browser.execute_script("return arguments[0].naturalWidth", img) > 100
    browser.get(base(server) + f"/tasks?InstanceId={ids[0]}&TaskType=Screenshot&Level=2")
    until(browser, lambda d: d.execute_script(
        "return arguments[0].naturalWidth",
        d.find_element(By.CSS_SELECTOR, f"tr[data-task-id='{task_id}'] img.shot")), what="the thumbnail")


def test_a_running_batch_updates_without_a_reload(browser, server, client):
    _, ids = create_group(client, 2, name="consolelive")
    r = client.run_command(models.RunCommandRequest(instance_ids=ids, command_content="sleep 3")).body
    login(browser, server)
    browser.get(base(server) + f"/tasks/{r.task_id}")
    assert browser.find_element(By.ID, "task-status").text in ("Waiting", "Processing")
    browser.execute_script("window.__sameDocument = 42;")
    until(browser, lambda d: d.find_element(By.ID, "task-status").text == "Finished", timeout=60,
          what="the batch shown Finished")
    assert browser.execute_script("return window.__sameDocument") == 42, "the page was reloaded"
    assert browser.find_element(By.ID, "live").get_attribute("data-final") == "true"
    assert len(rows(browser, "tr.child .status")) == 2


def test_a_batch_page_follows_the_watch_stream(browser, server, client):
    _, ids = create_group(client, 2, name="consolestream")
    login(browser, server)
    r = client.run_command(models.RunCommandRequest(instance_ids=ids, command_content="sleep 2")).body
    browser.get(base(server) + f"/tasks/{r.task_id}")
    until(browser, lambda d: d.find_element(By.ID, "live").get_attribute("data-stream") == "open",
          what="the page's watch stream open")
    until(browser, lambda d: d.find_element(By.ID, "task-status").text == "Finished", timeout=60,
          what="the batch shown Finished")
    # Set only when an event of the stream arrived (a timed refresh does not).
    assert browser.find_element(By.ID, "live").get_attribute("data-streamed") == "true"
    # The stream needs the session: without it, no events.
    assert requests.get(base(server) + "/watch", timeout=10).status_code == 401


def test_another_account_sees_nothing(browser, server, client):
    _, ids = create_group(client, 1, name="consolemine")
    r = client.reboot_android_instances_in_group(
        models.RebootAndroidInstancesInGroupRequest(android_instance_ids=ids)).body
    batch = wait_batch(client, r.request_id)
    other = server.create_key("console-other-account")
    login(browser, server, key=other)
    browser.get(base(server) + f"/tasks/{batch.task_id}")
    assert "InvalidTaskId.NotFound" in browser.find_element(By.ID, "error").text
    browser.get(base(server) + "/tasks?InvokeId=" + r.request_id)
    assert steady(lambda: browser.find_element(By.ID, "total").text) == "0 tasks"
    assert rows(browser, "tr.task") == []
    browser.get(base(server))
    assert ids[0] not in browser.page_source


# --- sessions, over plain HTTP ---------------------------------------------------------------

def console_login(server, key):
    """A `requests` session signed in to the console with `key`, and its cookie's value."""
    key_id, secret = key
    session = requests.Session()
    r = session.post(base(server) + "/login", data={"access_key_id": key_id, "access_key_secret": secret},
                     allow_redirects=False, timeout=10)
    assert r.status_code == 303, (r.status_code, r.text)
    return session, session.cookies["cloudphone_console"]


def signed_in_with(server, cookie):
    """Whether a request carrying the session cookie `cookie` gets the fleet page."""
    r = requests.get(base(server), cookies={"cloudphone_console": cookie}, allow_redirects=False, timeout=10)
    assert r.status_code in (200, 303), r.status_code
    return r.status_code == 200


def test_a_logout_ends_the_session_and_every_copy_of_its_cookie(server):
    key = server.create_key("console-logout")
    session, cookie = console_login(server, key)
    assert signed_in_with(server, cookie)
    r = session.post(base(server) + "/logout", allow_redirects=False, timeout=10)
    assert r.status_code == 303 and r.headers["location"] == "/console/login"
    # The browser dropped its cookie; a copy kept elsewhere (stolen, or another tab's) is dead.
    assert not signed_in_with(server, cookie)
    _, again = console_login(server, key)
    assert signed_in_with(server, again)


def test_a_cookie_of_a_disabled_key_or_account_stays_dead_once_enabled(server):
    from test_accounts import admin
    key = server.create_key("console-disabled")
    _, cookie = console_login(server, key)
    admin(server, "keys", "disable", key[0])
    assert not signed_in_with(server, cookie)
    admin(server, "keys", "enable", key[0])
    assert not signed_in_with(server, cookie)

    _, cookie = console_login(server, key)
    assert signed_in_with(server, cookie)
    admin(server, "accounts", "disable", "console-disabled")
    assert not signed_in_with(server, cookie)
    admin(server, "accounts", "enable", "console-disabled")
    assert not signed_in_with(server, cookie)
    _, cookie = console_login(server, key)
    assert signed_in_with(server, cookie)


def test_the_console_stream_ends_with_its_session(server):
    key = server.create_key("console-stream-logout")
    session, cookie = console_login(server, key)
    stream = requests.get(base(server) + "/watch", cookies={"cloudphone_console": cookie}, stream=True,
                          timeout=30)
    assert stream.status_code == 200
    session.post(base(server) + "/logout", allow_redirects=False, timeout=10)
    # The server closes the stream within its recheck (5 s), read on a thread so that a stream
    # that stays open fails the test instead of hanging it.
    reader = threading.Thread(target=lambda: [None for _ in stream.iter_lines()], daemon=True)
    started = time.time()
    reader.start()
    reader.join(timeout=15)
    assert not reader.is_alive(), "the console stream outlived its session"
    assert time.time() - started < 15
    stream.close()
