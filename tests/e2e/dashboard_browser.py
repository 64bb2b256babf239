"""A real browser on the quickstart's Horizon, for tests/e2e/test_dashboard.py.

Debian's Chromium and ChromeDriver (tools/testenv/install-packages.sh),
driven by Selenium, headless, with a fresh profile per browser and no
network of its own (Selenium Manager offline; Chromium's background
services off). Every page the tests look at is saved as a PNG in one
directory per run, named in the test output, so a failure can be looked
at.
"""

import contextlib
import itertools
import os
import pathlib
import re
import shutil
import tempfile
import time

from selenium import webdriver
from selenium.common import exceptions as se_exceptions
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Django's single-process server on a busy 2-core machine renders
# Horizon's pages in seconds, not milliseconds: generous, not slow.
PAGE_TIMEOUT = 120
WAIT = 180
# One numbering for every browser of a run: the files sort in the order
# the pages were seen.
_SHOTS = itertools.count(1)
ARGUMENTS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1400,1000",
)


class Browser:
    """One signed-in (or not yet) Chromium; pages go to ``shots``."""

    def __init__(self, base_url, shots, name):
        self.base_url = base_url
        self.shots = pathlib.Path(shots)
        self.name = name
        self._profile = tempfile.mkdtemp(prefix="snapmanager-chromium-")
        os.environ["SE_OFFLINE"] = "true"
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for argument in ARGUMENTS:
            options.add_argument(argument)
        options.add_argument("--user-data-dir=" + self._profile)
        self.driver = webdriver.Chrome(
            service=Service(CHROMEDRIVER), options=options
        )
        self.driver.set_page_load_timeout(PAGE_TIMEOUT)

    def close(self):
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self._profile, ignore_errors=True)

    # -- pages -----------------------------------------------------------

    def shot(self, what):
        """Save the page as <shots>/<NN>-<user>-<what>.png."""
        slug = re.sub(r"[^a-z0-9]+", "-", what.lower()).strip("-")
        path = self.shots / (
            "%02d-%s-%s.png" % (next(_SHOTS), self.name, slug)
        )
        self.driver.save_screenshot(str(path))
        return path

    def open(self, path, what=None):
        self.driver.get(self.base_url + path)
        self.wait_ready()
        if what:
            self.shot(what)

    def wait_ready(self):
        WebDriverWait(self.driver, PAGE_TIMEOUT).until(
            lambda d: (
                d.execute_script("return document.readyState") == "complete"
            )
        )

    @property
    def title(self):
        return self.driver.title

    @property
    def source(self):
        return self.driver.page_source

    def find(self, css):
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css):
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def wait_for(self, css, timeout=PAGE_TIMEOUT, visible=True):
        condition = (
            ec.visibility_of_element_located
            if visible
            else ec.presence_of_element_located
        )
        return WebDriverWait(self.driver, timeout).until(
            condition((By.CSS_SELECTOR, css))
        )

    def wait_until(self, what, check, timeout=WAIT, reload_every=None):
        """Poll ``check()`` until true; fails after ``timeout`` seconds
        with a screenshot. With ``reload_every``, the page is reloaded
        that often while waiting."""
        deadline = time.monotonic() + timeout
        reloaded = time.monotonic()
        while True:
            with contextlib.suppress(
                se_exceptions.StaleElementReferenceException,
                se_exceptions.NoSuchElementException,
            ):
                if check():
                    return
            now = time.monotonic()
            if now > deadline:
                shot = self.shot("timed out " + what)
                raise AssertionError(
                    "%s: not within %ds (page: %s)" % (what, timeout, shot)
                )
            if reload_every and now - reloaded > reload_every:
                self.driver.refresh()
                self.wait_ready()
                reloaded = time.monotonic()
            time.sleep(1)

    # -- Horizon ---------------------------------------------------------

    def login(self, user, password):
        """Keystone's login form, as Horizon shows it."""
        self.open("/auth/login/", "login form")
        self.find("#id_username").send_keys(user)
        self.find("#id_password").send_keys(password)
        self.find("#loginBtn, button[type=submit]").click()
        WebDriverWait(self.driver, PAGE_TIMEOUT).until(
            lambda d: "/auth/login" not in d.current_url
        )
        self.wait_ready()
        self.shot("signed in")

    def messages(self):
        """The texts of Horizon's message boxes on the page."""
        return [
            e.text for e in self.find_all(".messages .alert, .alert-danger")
        ]

    def submit_modal(self, modal_css):
        """Submit the open modal form and wait for the page it leads to."""
        modal = self.wait_for(modal_css)
        old = self.driver.find_element(By.TAG_NAME, "html")
        modal.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
        WebDriverWait(self.driver, PAGE_TIMEOUT).until(ec.staleness_of(old))
        self.wait_ready()
