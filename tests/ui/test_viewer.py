"""The viewer at /ui in a real headless Chromium, against a real server fed by a real agent:
search, page back, jump to an execution, follow live, pause and resume, and the token prompt."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.cli import feeding
from tests.support import processes

pytestmark = pytest.mark.browser

LINES = 260  # more than one page of the viewer (200)
PAGE = 200
VIEW = f"ns={feeding.NAMESPACE}&target=function/{feeding.WORKLOAD}"


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[feeding.Fed]:
    with feeding.fed_server(tmp_path_factory.mktemp("viewer"), LINES) as fed:
        yield fed


def _open(page: Page, fed: feeding.Fed, view: str = VIEW) -> None:
    page.goto(f"{fed.server.url}/ui/#{view}")


def _row_ids(page: Page) -> list[str]:
    ids: list[str] = page.eval_on_selector_all("#rows tr", "rows => rows.map(r => r.dataset.id)")
    return ids


def _newest_first_page(fed: feeding.Fed, params: dict[str, str]) -> list[Any]:
    r = httpx.get(
        f"{fed.server.url}{fed.workload_path}/logs",
        params={**params, "order": "desc", "limit": str(PAGE)},
        headers={"Accept": "application/json"},
    )
    assert r.status_code == 200, r.text
    return list(reversed(r.json()["records"]))


def test_opens_the_first_workload_out_of_the_box_and_offers_its_pods(
    page: Page, fed: feeding.Fed
) -> None:
    page.goto(f"{fed.server.url}/ui")
    expect(page.locator("#rows tr")).to_have_count(PAGE)
    expect(page.locator("#namespace")).to_have_value(feeding.NAMESPACE)
    expect(page.locator("#target")).to_have_value(f"function/{feeding.WORKLOAD}")
    offered = page.eval_on_selector_all("#targets option", "options => options.map(o => o.value)")
    assert offered == [f"function/{feeding.WORKLOAD}", *(f"pod/{pod}" for pod in feeding.PODS)]


def test_search_shows_the_newest_page_and_older_pages_reach_the_first_line(
    page: Page, fed: feeding.Fed
) -> None:
    _open(page, fed)
    rows = page.locator("#rows tr")
    expect(rows).to_have_count(PAGE)
    assert _row_ids(page) == [r["id"] for r in _newest_first_page(fed, {})]
    expect(page.locator("#status")).to_contain_text("more before")
    page.click("#older")
    everything = fed.records()
    expect(rows).to_have_count(len(everything))
    assert sorted(_row_ids(page), key=int) == sorted((r["id"] for r in everything), key=int)
    expect(page.locator("#older")).to_be_hidden()


def test_text_and_level_search_shows_what_the_api_answers(page: Page, fed: feeding.Fed) -> None:
    _open(page, fed)
    expect(page.locator("#rows tr")).to_have_count(PAGE)
    page.fill("#q", "timeout")
    page.check("#levels input[value=ERROR]")
    page.click("#search")
    wanted = fed.records({"q": "timeout", "level": "ERROR"})
    assert wanted
    expect(page.locator("#rows tr")).to_have_count(len(wanted))
    assert _row_ids(page) == [r["id"] for r in wanted]
    expect(page.locator("#rows tr:not(.lvl-ERROR)")).to_have_count(0)
    # The view is in the address: a reload shows the same search.
    assert "q=timeout" in page.url
    assert "level=ERROR" in page.url


def test_clicking_an_execution_id_shows_only_that_execution(page: Page, fed: feeding.Fed) -> None:
    _open(page, fed)
    link = page.locator("#rows a.execution").last
    expect(link).to_be_visible()
    execution = link.inner_text()
    link.click()
    wanted = fed.records({"executionId": execution})
    expect(page.locator("#rows tr")).to_have_count(len(wanted))
    assert _row_ids(page) == [r["id"] for r in wanted]
    expect(page.locator("#execution-value")).to_have_text(execution)
    page.click("#execution-clear")
    expect(page.locator("#rows tr")).to_have_count(PAGE)


def test_truncated_lines_are_highlighted_and_line_limit_counters_shown(
    page: Page, fed: feeding.Fed
) -> None:
    _open(page, fed, VIEW + "&q=begins")
    truncated = [r for r in fed.records({"q": "begins"}) if r["truncated"]]
    assert truncated
    marked = page.locator("#rows tr.truncated")
    expect(marked).to_have_count(len(truncated))
    expect(marked.locator(".badge")).to_have_text(["truncated"] * len(truncated))
    stats = fed.stats()
    expect(page.locator("#stat-truncated")).to_have_text(str(stats["truncatedLines"]))
    expect(page.locator("#stat-dropped")).to_have_text(str(stats["droppedLines"]))
    expect(page.locator("#stat-split")).to_have_text(str(stats["splitLines"]))
    expect(page.locator("#stat-pods")).to_have_text(str(len(feeding.PODS)))
    if stats["truncatedLines"]:
        expect(page.locator("#stat-truncated")).to_have_class(re.compile("nonzero"))


def test_follow_shows_new_lines_live_and_pause_holds_them_until_resume(
    page: Page, fed: feeding.Fed, artifacts: Path
) -> None:
    _open(page, fed)
    expect(page.locator("#rows tr")).to_have_count(PAGE)
    page.click("#follow")
    expect(page.locator("#status")).to_have_text("live")
    for i in range(5):
        fed.write(i, f"live line {i}")
    live_rows = page.locator("#rows tr", has_text="live line")
    expect(live_rows).to_have_count(5)

    page.click("#pause")
    expect(page.locator("#pause")).to_have_text("Resume")
    for i in range(4):
        fed.write(i, f"held line {i}")
    expect(page.locator("#status")).to_have_text("paused, 4 new lines waiting")
    expect(page.locator("#rows tr", has_text="held line")).to_have_count(0)

    page.click("#pause")
    expect(page.locator("#rows tr", has_text="held line")).to_have_count(4)
    for i in range(3):
        fed.write(i, f"after resume {i}")
    expect(page.locator("#rows tr", has_text="after resume")).to_have_count(3)
    # Auto-scroll kept the newest line in view.
    expect(page.locator("#rows tr").last).to_be_in_viewport()
    page.screenshot(path=str(artifacts / "viewer.png"))

    # A server restart drops the stream: the page reconnects after the last line it showed.
    fed.server.stop()
    for i in range(3):
        fed.write(i, f"across the restart {i}")
    fed.server.start().wait_ready()
    expect(page.locator("#rows tr", has_text="across the restart")).to_have_count(3)
    expect(page.locator("#status")).to_contain_text("live")
    ids = _row_ids(page)
    assert len(ids) == len(set(ids)), "a line was shown twice"


def test_asks_for_a_token_when_the_server_wants_one(page: Page, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("viewer-token shop\nadmin-token *\n")
    server = processes.server_process(tmp_path, extra=["--tokens-file", str(tokens)])
    with processes.running(server):
        server.start().wait_ready()
        feeding.register(server, tmp_path / "pods", token="admin-token")
        page.goto(f"{server.url}/ui/#{VIEW}")
        dialog = page.locator("#token-dialog")
        expect(dialog).to_be_visible()
        page.fill("#token", "viewer-token")
        page.click("#token-form button[type=submit]")
        expect(dialog).to_be_hidden()
        # The pods' own events (scheduled, started) are there to read once the token is in.
        expect(page.locator("#rows tr")).not_to_have_count(0)
        assert page.evaluate("sessionStorage.getItem('tailrace.token')") == "viewer-token"
        # A namespace the token may not read: the page says so and takes another token.
        page.fill("#namespace", "billing")
        page.click("#search")
        expect(dialog).to_be_visible()
        expect(page.locator("#token-reason")).to_contain_text("may not read")
        page.fill("#token", "admin-token")
        page.click("#token-form button[type=submit]")
        expect(page.locator("#status")).to_contain_text("not found")
