"""The review page in a real browser (Chromium via Selenium): real pictures in the grid, the
slider and the loupe, accept and reject by button and by keyboard, navigation with ← and →,
bulk accept; and the files and job rows each click leaves behind.

One library, one server and one browser for the whole module (each takes seconds to start);
each test picks the restorations it acts on from the store, so none depends on another's
choices beyond what is still awaiting.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import cv2
import numpy as np
import pytest

from core import hashing
from daemon.review.layout import ReviewDirs
from daemon.review.previews import LOUPE_SIDE
from daemon.settings import Settings
from daemon.store import JobStore, open_store
from daemon.store.review import Review
from tests.review.browser import chromium
from tests.review.helpers import scan_and_work, settings_for

WAIT = 30.0  # generous: the machine running the suite may be busy


@dataclass
class Page:
    settings: Settings
    store: JobStore
    url: str
    driver: Any

    def awaiting(self) -> list[Review]:
        return sorted(self.store.list_reviews("awaiting"), key=lambda r: r.job_id)

    def review(self, job_id: int) -> Review | None:
        return self.store.get_review(job_id)

    def until(self, condition: Callable[[], Any], what: str) -> Any:
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.driver, WAIT, poll_frequency=0.05).until(
            lambda _d: condition(), message=what
        )


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Page]:
    from daemon.demo import build_sample_library
    from daemon.review.web.server import ReviewServer

    tmp = tmp_path_factory.mktemp("review-page")
    library = tmp / "library"
    # five: three decided one by one, two left for the bulk accept
    build_sample_library(library, count=5, video_size=(96, 72), scale=2, seed=11)
    settings = settings_for(tmp, library, review={"required": True})
    scan_and_work(settings).close()
    store = open_store(settings.database_url)
    server = ReviewServer(settings, store, host="127.0.0.1", port=0).start()
    try:
        with chromium() as driver:
            yield Page(settings, store, server.url, driver)
    finally:
        server.stop()
        store.close()


def _pictures_loaded(driver: Any) -> bool:
    return bool(driver.execute_script(
        "const imgs = Array.from(document.querySelectorAll('.thumbs img'));"
        "return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0);"
    ))


def test_grid_shows_every_restoration_with_real_pictures(page: Page, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    page.driver.get(page.url + "?state=all")
    cards = page.driver.find_elements(By.CSS_SELECTOR, "li.card")
    assert sorted(int(c.get_attribute("data-job")) for c in cards) == sorted(
        r.job_id for r in page.awaiting()
    )
    page.until(lambda: _pictures_loaded(page.driver), "thumbnails to load")
    shot = tmp_path / "grid.png"
    assert page.driver.save_screenshot(str(shot))
    pixels = cv2.imread(str(shot))
    thumbs = page.driver.find_element(By.CSS_SELECTOR, "li.card .thumbs")
    box = thumbs.rect  # CSS pixels; the headless window's device scale is 1
    region = pixels[int(box["y"]) : int(box["y"] + box["height"]),
                    int(box["x"]) : int(box["x"] + box["width"])]
    # a real picture: many colours and strong contrast, where a blank or broken image has
    # one flat colour (the page background is a single dark grey)
    colours = len(np.unique(region.reshape(-1, 3) // 16, axis=0))
    assert region.size and region.std() > 20 and colours > 100, (region.std(), colours)
    # the flag filter narrows the grid: none of these restorations is flagged
    page.driver.get(page.url + "?state=all&flagged=1")
    assert page.driver.find_elements(By.CSS_SELECTOR, "li.card") == []


def test_grid_pages_keep_the_filters(page: Page) -> None:
    from selenium.webdriver.common.by import By

    order = [r.job_id for r in page.store.list_reviews("awaiting", limit=None)]
    assert len(order) == 5, "runs before any decision: all five await"

    def shown() -> list[int]:
        return [int(c.get_attribute("data-job"))
                for c in page.driver.find_elements(By.CSS_SELECTOR, "li.card")]

    def query() -> dict[str, list[str]]:
        return parse_qs(urlsplit(page.driver.current_url).query)

    page.driver.get(page.url + "?state=awaiting&per=2")
    assert shown() == order[0:2]
    assert page.driver.find_element(By.ID, "page-of").text.startswith("page 1 of 3")
    assert not page.driver.find_elements(By.ID, "page-prev")
    for number, expected in ((2, order[2:4]), (3, order[4:5])):
        page.driver.find_element(By.ID, "page-next").click()
        page.until(lambda n=number: query().get("page") == [str(n)], f"page {number}")
        assert query()["state"] == ["awaiting"] and query()["per"] == ["2"]
        assert shown() == expected
    assert not page.driver.find_elements(By.ID, "page-next")
    page.driver.find_element(By.ID, "page-prev").click()
    page.until(lambda: query().get("page") == ["2"], "back to page 2")
    assert shown() == order[2:4]
    # the flag filter from page 2: back to the first page of the narrower list, same size
    page.driver.find_element(By.ID, "flagged").click()
    page.until(lambda: query().get("flagged") == ["1"], "the flag filter")
    assert query()["per"] == ["2"] and "page" not in query() and shown() == []


def test_slider_and_loupe_in_the_detail_view(page: Page) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    job_id = page.awaiting()[0].job_id
    page.driver.get(f"{page.url}job/{job_id}")
    split = lambda: page.driver.execute_script(  # noqa: E731
        "return getComputedStyle(document.getElementById('compare'))"
        ".getPropertyValue('--split').trim()"
    )
    assert split() == "50%"
    slider = page.driver.find_element(By.ID, "slider")
    slider.send_keys(*([Keys.ARROW_RIGHT] * 10))  # the range input moves by its step, 1 %
    assert slider.get_attribute("value") == "60" and split() == "60%"
    after = page.driver.find_element(By.ID, "after")
    clip = page.driver.execute_script("return getComputedStyle(arguments[0]).clipPath", after)
    assert "60%" in clip
    # dragging on the picture moves the split to where the pointer is
    compare = page.driver.find_element(By.ID, "compare")
    width = compare.rect["width"]
    ActionChains(page.driver).move_to_element_with_offset(compare, -int(width * 0.3), 0) \
        .click_and_hold().move_by_offset(1, 0).release().perform()
    page.until(lambda: int(slider.get_attribute("value")) < 30, "the drag to move the split")
    # hovering shows the 1:1 loupe: frame | restoration around the pointer
    ActionChains(page.driver).move_to_element_with_offset(compare, int(width * 0.2), 0).perform()
    loupe = page.driver.find_element(By.ID, "loupe")
    page.until(
        lambda: page.driver.execute_script(
            "return arguments[0].complete && arguments[0].naturalWidth", loupe
        ),
        "the loupe picture",
    )
    asked = parse_qs(urlsplit(loupe.get_attribute("src")).query)
    assert abs(float(asked["x"][0]) - 0.7) < 0.02  # where the pointer is (to a pixel or so)
    # 1:1: a square crop of the still's own pixels (or the whole still when smaller), twice
    width, height = page.review(job_id).face_check["size"]
    side = min(LOUPE_SIDE, width, height)
    shown = page.driver.execute_script(
        "return [arguments[0].naturalWidth, arguments[0].naturalHeight]", loupe
    )
    assert shown == [2 * side + 4, side]  # frame | 4 px gap | restoration


def _decided(page: Page, job_id: int, state: str) -> Review:
    return page.until(
        lambda: (r := page.review(job_id)) is not None and r.state == state and r,
        f"job {job_id} to be {state}",
    )


def _moved_on(page: Page, job_id: int) -> None:
    """After a decision the page goes to the next restoration by itself: wait for that, so
    the test's own next navigation is not overtaken by it."""
    page.until(lambda: f"/job/{job_id}" not in page.driver.current_url, "the next page")


def test_accept_and_reject_by_button_and_keyboard(page: Page) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    dirs = ReviewDirs(page.settings.state_dir)
    first, second, third = (r.job_id for r in page.awaiting()[:3])

    page.driver.get(f"{page.url}job/{first}")
    page.driver.find_element(By.ID, "accept").click()
    accepted = _decided(page, first, "accepted")
    out = Path(accepted.job.output_path)
    assert out.is_relative_to(Path(page.settings.output.tree)) and out.is_file()
    assert hashing.matches(out, accepted.job.output_signature["content_hash"])
    assert accepted.decided_by == "web"
    _moved_on(page, first)

    page.driver.get(f"{page.url}job/{second}")
    ActionChains(page.driver).send_keys("r").perform()
    rejected = _decided(page, second, "rejected")
    assert rejected.job.output_path is None
    # the staged still goes right after the decision is recorded
    page.until(lambda: not dirs.staging_dir(second).exists(), "the staged still to go")
    _moved_on(page, second)

    page.driver.get(f"{page.url}job/{third}")
    ActionChains(page.driver).send_keys("a").perform()
    assert Path(_decided(page, third, "accepted").job.output_path).is_file()
    _moved_on(page, third)
    reasons = [e.reason for e in page.store.events(second)]
    assert "review: rejected by web (staged restoration discarded)" in reasons


def test_arrow_keys_walk_through_the_restorations(page: Page) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    ids = [r.job_id for r in page.store.list_reviews("all", limit=None)]  # the page's order
    assert len(ids) >= 3
    page.driver.get(f"{page.url}job/{ids[1]}?state=all")
    ActionChains(page.driver).send_keys(Keys.ARROW_RIGHT).perform()
    page.until(lambda: f"/job/{ids[2]}?" in page.driver.current_url, "→ to the next one")
    ActionChains(page.driver).send_keys(Keys.ARROW_LEFT).perform()
    page.until(lambda: f"/job/{ids[1]}?" in page.driver.current_url, "← back")


def test_bulk_accept_from_the_grid(page: Page) -> None:
    from selenium.webdriver.common.by import By

    waiting = [r.job_id for r in page.awaiting()]
    assert waiting, "the earlier tests leave at least one restoration awaiting"
    page.driver.get(page.url + "?state=awaiting")
    button = page.driver.find_element(By.ID, "bulk-accept")
    assert not button.is_enabled()
    page.driver.find_element(By.ID, "select-all").click()
    assert button.is_enabled()
    button.click()
    for job_id in waiting:
        assert Path(_decided(page, job_id, "accepted").job.output_path).is_file()
    page.until(
        lambda: not page.driver.find_elements(By.CSS_SELECTOR, "li.card"),
        "the grid of awaiting restorations to empty",
    )
