"""The review page of `dyno audit review`, in a real browser: headless Chromium (Debian's `chromium` and
`chromium-driver`, which .ci/run installs) driven by Selenium. Skips only when no browser is present.

Labels five items with the keyboard, undoes, reloads and resumes, survives `kill -9` of the server, shows a
corpus `<script>` as text, and saves a screenshot (in $DYNO_TEST_ARTEFACTS when set, else the test's tmp).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dynosaur.core.records import AuditSample
from dynosaur.registry.audit import latest, read_answers, record_sample
from dynosaur.registry.audit_server import ReviewServer, ReviewState
from dynosaur.registry.ledger import Ledger
from tests.factories import make_audit_sample

DYNO = str(Path(sys.executable).parent / "dyno")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        pytest.skip("chromium and chromedriver are not installed (.ci/run installs them)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1200,1000",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def wait(check: Callable[[], Any], what: str, timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def text(driver: Any, element_id: str) -> str:
    return driver.execute_script("return document.getElementById(arguments[0]).textContent", element_id)


def press(driver: Any, keys: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    for key in keys:
        ActionChains(driver).send_keys(key).perform()
        time.sleep(0.05)


def start_review(repo: Path, port: int = 0) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [DYNO, "audit", "review", "--reviewer", "ann", "--port", str(port)],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "DVC_NO_ANALYTICS": "1"},
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    assert url.startswith("http://127.0.0.1:"), proc.stderr.read() if proc.stderr else url
    return proc, url


def answers(repo: Path, audit: str) -> dict[str, dict[str, str | None]]:
    current = latest(read_answers(repo, audit, "human"))
    return {
        iid: {"q": a.valid_instruction, "i": a.input_suffices, "o": a.output_correct}  # type: ignore[dict-item]
        for (_, iid), a in current.items()
    }


def test_label_undo_reload_and_survive_a_killed_server(base: Path, browser: Any, tmp_path: Path):
    repo = base / "repo"
    sample, _ = record_sample(repo, "v2", n=8, seed=5)
    order = [i.instance_id for i in sample.items]
    proc, url = start_review(repo)
    try:
        browser.get(url)
        wait(lambda: text(browser, "progress") == "0 / 8", "the page to load")
        # five items with the keyboard: 1 yes, 2 no, 3 unsure, three questions each
        press(browser, "111112131211111")
        wait(lambda: text(browser, "progress") == "5 / 8", "five answers saved")
        assert text(browser, "running") == "fully valid 40% (95% CI 12–77%)"
        got = answers(repo, sample.audit_id)
        assert [got[i] for i in order[:5]] == [
            {"q": "yes", "i": "yes", "o": "yes"},
            {"q": "yes", "i": "yes", "o": "no"},
            {"q": "yes", "i": "unsure", "o": "yes"},
            {"q": "no", "i": "yes", "o": "yes"},
            {"q": "yes", "i": "yes", "o": "yes"},
        ]
        # u takes the last answer back (on disk too), a new key answers it again
        press(browser, "u")
        wait(lambda: text(browser, "progress") == "4 / 8", "the undo saved")
        assert answers(repo, sample.audit_id)[order[4]]["o"] is None
        press(browser, "2")
        wait(lambda: text(browser, "progress") == "5 / 8", "the answer given again")
        assert answers(repo, sample.audit_id)[order[4]]["o"] == "no"
        # n/p move; a reload resumes at the first unanswered item
        press(browser, "pp")
        assert text(browser, "position") == "4 of 8"
        browser.refresh()
        wait(lambda: text(browser, "position") == "6 of 8", "resuming at item 6")
        assert text(browser, "progress") == "5 / 8"
        # half of item 6, then the server is killed: what was saved stays, what was not is said so
        press(browser, "1")
        wait(
            lambda: answers(repo, sample.audit_id).get(order[5], {}).get("q") == "yes",
            "item 6's first answer",
        )
        port = int(url.split(":")[2].split("/")[0])
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        press(browser, "1")
        wait(
            lambda: text(browser, "status").startswith("NOT SAVED"),
            "the page to say the answer was not saved",
        )
        proc, url = start_review(repo, port)
        browser.get(url)
        wait(lambda: text(browser, "position") == "6 of 8", "resuming at item 6 after the restart")
        assert text(browser, "progress") == "5 / 8"
        assert answers(repo, sample.audit_id)[order[5]] == {"q": "yes", "i": None, "o": None}
        press(browser, "11")  # item 6 goes on at its second question
        wait(lambda: text(browser, "progress") == "6 / 8", "item 6 finished")
        artefacts = Path(os.environ.get("DYNO_TEST_ARTEFACTS") or tmp_path)
        artefacts.mkdir(parents=True, exist_ok=True)
        shot = artefacts / "audit_review.png"
        assert browser.save_screenshot(str(shot))
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 5000
    finally:
        proc.kill()
        proc.wait(10)


def test_corpus_html_shows_as_text(tmp_path: Path, browser: Any):
    hostile = "<script>window.pwned = 1</script><b>bold</b>"
    sample = make_audit_sample(2)
    items = sample.items
    Ledger(tmp_path).append(AuditSample, [sample])
    rows = {
        i.instance_id: {
            "instruction": hostile,
            "input": '<img src="x" onerror="window.pwned = 2">',
            "output": "</pre><h1>out</h1>",
            "source_id": "s<i>",
            "task_id": "t",
            "split": "train",
            "row": 0,
        }
        for i in items
    }
    with ReviewServer(ReviewState(tmp_path, sample, rows, "ann")) as server:
        browser.get(server.url)
        wait(lambda: text(browser, "progress") == "0 / 2", "the page to load")
        assert text(browser, "instruction") == hostile
        assert text(browser, "input") == '<img src="x" onerror="window.pwned = 2">'
        assert text(browser, "output") == "</pre><h1>out</h1>"
        assert text(browser, "source") == "s<i>"
        time.sleep(0.3)
        assert browser.execute_script("return window.pwned === undefined")
        assert (
            browser.execute_script(
                "return document.querySelectorAll('#instruction *, #input *, #output *, #source *').length"
            )
            == 0
        )
