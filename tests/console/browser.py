"""Headless Chromium driven by Selenium, for the web console tests.

Needs Debian's chromium and chromium-driver and selenium in the venv at
target/test-python; `scripts/setup --test` installs them. No test logic here.
"""

import shutil
import tempfile

from selenium import webdriver
from selenium.common.exceptions import (
    NoSuchElementException,
    StaleElementReferenceException,
    TimeoutException,
    WebDriverException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

FLAGS = (
    "--headless=new",
    "--no-sandbox",  # runs as root in a container
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


def driver(width=1280, height=900):
    """A headless Chrome WebDriver with a fresh profile and browser logging.

    The profile directory is removed when the driver quits.
    """
    profile = tempfile.mkdtemp(prefix="livesnap-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={width},{height}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        d = webdriver.Chrome(
            service=Service(executable_path=CHROMEDRIVER), options=options
        )
    except BaseException:
        shutil.rmtree(profile, ignore_errors=True)
        raise
    quit = d.quit

    def quit_and_clean():
        try:
            quit()
        finally:
            shutil.rmtree(profile, ignore_errors=True)

    d.quit = quit_and_clean
    d.set_window_size(width, height)
    d.implicitly_wait(0)  # tests wait explicitly, with wait_for
    return d


def console_errors(driver):
    """Messages of the SEVERE browser-log entries since the last call.

    Chromedriver hands each log entry out once: reading the log drains it.
    """
    return [
        e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"
    ]


def wait_for(driver, condition, timeout=60):
    """WebDriverWait(driver, timeout).until(condition), failing with the page.

    On timeout raises an AssertionError with the current URL and the page's
    visible text.
    """
    def tolerant(d):
        # Chromedriver reports an element of a page replaced between finding
        # and reading it as an unknown error, not as a stale element.
        try:
            return condition(d)
        except WebDriverException as e:
            if "does not belong to the document" in str(e):
                return False
            raise

    try:
        # A condition may look at a page that is being replaced.
        ignored = (NoSuchElementException, StaleElementReferenceException)
        return WebDriverWait(driver, timeout, ignored_exceptions=ignored).until(tolerant)
    except TimeoutException:
        try:
            text = driver.find_element(By.TAG_NAME, "body").text
        except Exception as e:  # no body (yet), or the browser is gone
            text = f"<no body text: {e.__class__.__name__}>"
        if len(text) > 2000:
            text = text[:2000] + "..."
        raise AssertionError(
            f"timed out after {timeout}s waiting for {condition!r}\n"
            f"url: {driver.current_url}\npage text:\n{text}"
        ) from None


def screenshot(driver, path):
    """Saves a full-page PNG at path (at most 4000 pixels of page high).

    Grows the window so the viewport holds the whole page, then restores it.
    document.body.scrollHeight alone leaves out the body's margins, and the
    window is taller than the viewport: headless Chromium reserves room for
    the browser's own toolbars (143 pixels in Chromium 156).
    """
    size = driver.get_window_size()
    height, inner = driver.execute_script(
        "return [Math.max(document.documentElement.scrollHeight,"
        " document.body.scrollHeight), window.innerHeight]"
    )
    toolbars = max(size["height"] - int(inner), 0)
    try:
        driver.set_window_size(
            size["width"], min(max(int(height), 1), 4000) + toolbars
        )
        if not driver.save_screenshot(path):
            raise AssertionError(f"could not save a screenshot to {path}")
    finally:
        driver.set_window_size(size["width"], size["height"])
