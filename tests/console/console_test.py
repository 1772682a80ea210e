"""The web console in a real headless Chromium: a customer signs in, adds a
domain, authorizes a bucket, creates a template, watches a live ffmpeg
stream's thumbnail change, opens its snapshots, edits the interval (and
sees it in the API), provokes a field error, uploads a function; no page
logs a browser error, every form control has a label, no page scrolls
sideways at phone width.

usage: console_test.py BASE_URL PROJECT_ID TOKEN RTMP_URL VIDEO FUNCTION_WASM [SCREENSHOT_DIR]
(RTMP_URL is rtmp://127.0.0.1:PORT; VIDEO an FLV to publish; with
SCREENSHOT_DIR every page is also saved at desktop and phone width.)
Exits 0 when every check passed; an AssertionError says which did not.
"""
import json
import os
import re
import subprocess
import sys
import urllib.request

from selenium.webdriver.common.by import By

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browser import console_errors, driver, screenshot, wait_for  # noqa: E402

DOMAIN = "cam.example.com"
PHONE = (390, 844)


def main():
    base, project, token, rtmp, video, wasm, *rest = sys.argv[1:]
    shots = rest[0] if rest else None
    d = driver()
    publisher = None
    try:
        publisher = flow(d, base, project, token, rtmp, video, wasm, shots)
    finally:
        if publisher:
            publisher.kill()
        d.quit()
    print("console: every check passed")


def check_page(d, name, shots):
    """What every page must be: no browser errors, labelled controls, a
    heading, no sideways scrolling at phone width; saved when asked."""
    errors = console_errors(d)
    assert not errors, f"{name}: browser console errors {errors}"
    unlabelled = d.execute_script(
        """return [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
             .filter(e => !(e.id && document.querySelector('label[for="' + e.id + '"]')) && !e.getAttribute('aria-label'))
             .map(e => e.name)"""
    )
    assert not unlabelled, f"{name}: form controls without a label: {unlabelled}"
    assert d.find_elements(By.CSS_SELECTOR, "main h1"), f"{name}: no heading"
    size = d.get_window_size()
    if shots:
        screenshot(d, os.path.join(shots, f"{name}-desktop.png"))
    d.set_window_size(*PHONE)
    wide = d.execute_script(
        """const w = document.documentElement.clientWidth;
           if (document.documentElement.scrollWidth <= w) return [];
           return [...document.querySelectorAll('main *, header *')]
             .filter(e => e.getBoundingClientRect().right > w && !e.closest('.scroll'))
             .map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right)).slice(0, 8)"""
    )
    assert not wide, f"{name}: the page scrolls sideways at {PHONE[0]} px: {wide}"
    if shots:
        screenshot(d, os.path.join(shots, f"{name}-phone.png"))
    d.set_window_size(size["width"], size["height"])


def api(base, project, token, path):
    req = urllib.request.Request(f"{base}/v1/{project}{path}", headers={"X-Auth-Token": token})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def submit(d, form_css, button_text=None):
    form = d.find_element(By.CSS_SELECTOR, form_css)
    buttons = form.find_elements(By.CSS_SELECTOR, "button")
    button = next(b for b in buttons if button_text is None or b.text == button_text)
    button.click()


def flow(d, base, project, token, rtmp, video, wasm, shots):
    # Sign in: a wrong token is refused on the page; the right one lands on Domains.
    d.get(f"{base}/console/domains")
    wait_for(d, lambda d: d.current_url.endswith("/console/login"))
    check_page(d, "signin", shots)
    d.find_element(By.ID, "project_id").send_keys(project)
    d.find_element(By.ID, "token").send_keys("not-the-token")
    submit(d, "form.card")
    wait_for(d, lambda d: "not valid" in d.find_element(By.CSS_SELECTOR, "[role=alert]").text)
    d.find_element(By.ID, "token").send_keys(token)
    submit(d, "form.card")
    wait_for(d, lambda d: d.current_url.endswith("/console/domains"))

    # Domains: the empty state, then a domain with its ingest URL.
    assert "No domains yet" in d.page_source
    check_page(d, "domains-empty", shots)
    d.find_element(By.ID, "domain").send_keys(DOMAIN)
    submit(d, "#add-domain")
    wait_for(d, lambda d: f"rtmp://{DOMAIN}/live/STREAM" in d.page_source)
    check_page(d, "domains", shots)

    # Authorization: the declared bucket, authorized.
    d.get(f"{base}/console/authorization")
    d.find_element(By.CSS_SELECTOR, "button[aria-label='Authorize shots']").click()
    wait_for(d, lambda d: "Bucket shots authorized" in d.page_source)
    check_page(d, "authorization", shots)

    # A template on that bucket, every 10 s.
    d.get(f"{base}/console/templates")
    d.find_element(By.LINK_TEXT, f"New template for {DOMAIN}").click()
    wait_for(d, lambda d: d.find_elements(By.ID, "time_interval"))
    fill(d, "time_interval", "10")
    d.find_element(By.CSS_SELECTOR, "#obs_location\\.bucket option[value=shots]").click()
    d.find_element(By.CSS_SELECTOR, "button[value=generate-key]").click()
    wait_for(d, lambda d: re.fullmatch("[0-9a-f]{64}", d.find_element(By.ID, "auth_key").get_attribute("value")))
    d.find_element(By.CSS_SELECTOR, "button[value=save]").click()
    wait_for(d, lambda d: f"Template {DOMAIN}/live saved" in d.page_source)
    check_page(d, "templates", shots)

    # Edit: a refused interval is shown at its field; a good one reaches the API.
    d.find_element(By.CSS_SELECTOR, f"a[aria-label='Edit {DOMAIN}/live']").click()
    wait_for(d, lambda d: d.find_elements(By.ID, "time_interval"))
    assert d.find_element(By.ID, "app_name").get_attribute("readonly") is not None, "the app name is read-only on edit"
    assert d.find_element(By.ID, "auth_key").get_attribute("value") == "******", "the key is masked"
    fill(d, "time_interval", "1")
    d.find_element(By.CSS_SELECTOR, "button[value=save]").click()
    wait_for(d, lambda d: d.find_elements(By.ID, "time_interval-error"))
    field_error = d.find_element(By.ID, "time_interval-error").text
    assert "5" in field_error and "3600" in field_error, field_error
    check_page(d, "template-error", shots)
    fill(d, "time_interval", "5")
    d.find_element(By.CSS_SELECTOR, "button[value=save]").click()
    wait_for(d, lambda d: f"Template {DOMAIN}/live saved" in d.page_source)
    listed = api(base, project, token, f"/stream/snapshot?domain={DOMAIN}")
    assert listed["snapshot_config_list"][0]["time_interval"] == 5, listed

    # A live stream: it appears with its thumbnail, which changes by itself.
    publisher = subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-i", video, "-c", "copy", "-f", "flv",
         "-rtmp_tcurl", f"rtmp://{DOMAIN}/live", f"{rtmp}/live/cam"],
        stdin=subprocess.DEVNULL,
    )
    d.get(f"{base}/console/streams")

    def thumbnail(d):
        imgs = d.find_elements(By.CSS_SELECTOR, "img.thumb")
        if not imgs:
            d.refresh()  # the stream is not live yet
            return False
        return d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", imgs[0]) > 0

    wait_for(d, thumbnail)
    first = d.find_element(By.CSS_SELECTOR, "img.thumb").get_attribute("data-etag")
    assert first, "the thumbnail came with an ETag"
    assert "H264" in d.page_source and "320x240" in d.page_source
    wait_for(d, lambda d: d.find_element(By.CSS_SELECTOR, "img.thumb").get_attribute("data-etag") not in (None, first))
    img = d.find_element(By.CSS_SELECTOR, "img.thumb")
    assert d.execute_script("return arguments[0].naturalWidth", img) > 0
    d.refresh()  # the rates, measured over the 5 s since
    wait_for(d, lambda d: d.execute_script("const i = document.querySelector('img.thumb'); return i && i.complete && i.naturalWidth > 0"))
    check_page(d, "streams", shots)

    # Its snapshots: a grid, and the full image on click.
    d.find_element(By.PARTIAL_LINK_TEXT, "Snapshots of").click()
    wait_for(d, lambda d: d.find_elements(By.CSS_SELECTOR, ".grid img"))
    grid = d.find_elements(By.CSS_SELECTOR, ".grid img")
    wait_for(d, lambda d: all(d.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", g) for g in grid))
    check_page(d, "snapshots", shots)
    grid[0].click()
    wait_for(d, lambda d: "/console/snapshots/image" in d.current_url)
    assert d.execute_script("return document.images.length && document.images[0].naturalWidth") > 0

    # Usage counts them; callbacks and functions.
    d.get(f"{base}/console/usage")
    assert d.find_elements(By.CSS_SELECTOR, "svg.chart rect.bar")
    total = int(d.find_element(By.CSS_SELECTOR, "main p strong").text)
    assert total >= 2, f"usage counted {total}"
    check_page(d, "usage", shots)
    d.get(f"{base}/console/callbacks")
    assert "No failed callbacks" in d.page_source
    check_page(d, "callbacks", shots)
    d.get(f"{base}/console/functions")
    fill(d, "name", "my-notifier")
    d.find_element(By.ID, "component").send_keys(wasm)
    submit(d, "form.card", "Upload")
    wait_for(d, lambda d: "Function my-notifier uploaded" in d.page_source)
    check_page(d, "functions", shots)
    d.find_element(By.CSS_SELECTOR, "a[aria-label='Inspect my-notifier']").click()
    wait_for(d, lambda d: "notifier" in d.find_element(By.TAG_NAME, "dl").text)
    check_page(d, "function", shots)

    # Sign out: the pages ask to sign in again.
    d.find_element(By.CSS_SELECTOR, ".signout button").click()
    wait_for(d, lambda d: d.current_url.endswith("/console/login"))
    d.get(f"{base}/console/domains")
    wait_for(d, lambda d: d.current_url.endswith("/console/login"))
    assert not console_errors(d)
    return publisher


def fill(d, element_id, value):
    field = d.find_element(By.ID, element_id)
    field.clear()
    field.send_keys(value)


if __name__ == "__main__":
    main()
