"""The dashboard in a real browser (Debian's headless Chromium, driven by Selenium through
Debian's chromedriver; ``make test`` installs both), against a real ``cloudq dashboard``
process and a real worker, on SQS (the emulator), Redis and RabbitMQ.

One browser for the module. A screenshot of each page goes to ``artifacts/dashboard/``
(git-ignored). The same real server answers the security checks over plain HTTP first."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cloudq import CloudQ, State
from tests.e2e.conftest import WorkerFactory
from tests.e2e.dashboard_server import dashboard_process
from tests.processes import wait_until

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "dashboard"
TOKEN = "s3cret-token"
ENGINES = {"sqs-ministack": "e2e_app", "redis": "redis_app", "rabbitmq": "amqp_app"}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            pytest.fail(f"{path} is missing: apt-get install chromium chromium-driver (make test does)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


@pytest.fixture(params=list(ENGINES))
def page_app(request: pytest.FixtureRequest) -> CloudQ:
    app: CloudQ = request.getfixturevalue(ENGINES[request.param])
    return app


def until(condition: Callable[[], bool], timeout: float = 20) -> None:
    assert wait_until(condition, timeout, 0.1), "timed out"


def element(browser: Any, by: str, value: str, timeout: float = 20) -> Any:
    """The element, once the page has it: a click that submits a form returns before the
    next page has loaded (on RabbitMQ the replay's page came after the lookup)."""
    found: list[Any] = []

    def present() -> bool:
        found[:] = browser.find_elements(by, value)
        return bool(found)

    if not wait_until(present, timeout, 0.1):
        body = browser.find_element("tag name", "body").text
        raise AssertionError(f"no {value!r} after {timeout} s on: {body!r}")
    return found[0]


def backlog(browser: Any) -> int:
    """The default queue's visible + not visible, as the page shows them now."""
    return int(
        browser.execute_script(
            "const row = document.querySelector('tr[data-queue=\"default\"]');"
            "return row ? Number(row.querySelector('.visible').textContent)"
            " + Number(row.querySelector('.not-visible').textContent) : -1;"
        )
    )


def dead_letters(browser: Any) -> int:
    text = browser.execute_script(
        "const row = document.querySelector('tr[data-queue=\"default\"]');"
        "return row ? row.querySelector('.dead').textContent : '-1';"
    )
    return int(str(text).strip())


def shot(browser: Any, engine: str, page: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / f"{engine}-{page}.png"))


def test_each_page_in_a_browser(
    page_app: CloudQ,
    browser: Any,
    start_worker: WorkerFactory,
    e2e_env: dict[str, str],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    from selenium.webdriver.common.by import By

    engine = request.node.callspec.params["page_app"]
    env = {**e2e_env, "CLOUDQ_DASHBOARD_TOKEN": TOKEN}
    with dashboard_process(env, tmp_path / "dashboard.log", "--allow-replay", "--refresh", "0.5") as url:
        check_security(url)
        # Given the queue page open (the token given once, kept as a cookie), on no backlog
        browser.get(f"{url}/?token={TOKEN}")
        browser.execute_script("window.notReloaded = true")
        until(lambda: backlog(browser) == 0)
        # When tasks are sent, one of them broken, and then a worker drains them (started
        # after the page saw them queued: a consumer that took them at once would hide them on
        # RabbitMQ, which counts only the messages no consumer holds)
        broken = page_app.tasks["until_fixed"].delay("dash")
        results = [page_app.tasks["sleep"].delay(0.1) for _ in range(30)]
        # Then the page's numbers rise and fall again by themselves, without a reload
        until(lambda: backlog(browser) > 0)
        shot(browser, engine, "queues")
        start_worker("-c", "2")
        until(lambda: backlog(browser) == 0 and dead_letters(browser) == 1, 30)
        # (on RabbitMQ the messages a consumer holds are not counted: they finish after)
        until(lambda: all(result.state is State.SUCCESS for result in results))
        assert browser.execute_script("return window.notReloaded") is True
        # When the bug is fixed and its dead letter replayed from the page
        browser.get(f"{url}/dead-letters/default")  # the panel's link (a click could hit a swap)
        assert "not fixed yet dash" in browser.page_source
        shot(browser, engine, "dead-letters")
        (Path(e2e_env["CLOUDQ_TEST_LOG_DIR"]) / "fixed").touch()
        element(browser, By.CSS_SELECTOR, "a.replay").click()
        shot(browser, engine, "confirm")
        element(browser, By.ID, "confirm").click()
        assert "Replayed 1 message(s)" in element(browser, By.ID, "replayed").text
        # Then the task reaches SUCCESS, and its page says so, with its first life's error
        until(lambda: broken.state is State.SUCCESS)
        browser.get(f"{url}/tasks?id={broken.id}")
        assert browser.find_element(By.ID, "state").text == "SUCCESS"
        assert "not fixed yet dash" in browser.page_source
        shot(browser, engine, "task")
        for page, marker in (
            ("periodic", "Periodic tasks"),
            ("outcomes", "Recent outcomes"),
            ("cost", "Cost"),
        ):
            browser.get(f"{url}/{page}")
            assert marker in browser.find_element(By.TAG_NAME, "h2").text
            shot(browser, engine, page)


def check_security(url: str) -> None:
    """The real server: no token 401, a foreign Host 400 (DNS rebinding), a POST without the
    CSRF token 403."""
    port = url.rsplit(":", 1)[1]
    assert httpx.get(url + "/").status_code == 401
    bearer = {"authorization": f"Bearer {TOKEN}"}
    assert httpx.get(url + "/periodic", headers=bearer).status_code == 200
    assert httpx.get(url + "/", headers={**bearer, "host": f"attacker.example:{port}"}).status_code == 400
    forged = httpx.post(url + "/dead-letters/default/replay", data={"all": "1"}, headers=bearer)
    assert forged.status_code == 403
