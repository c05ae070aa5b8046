"""Curator flows in a real browser (Chromium through Playwright, against the live server):
log in, filter, move with j/k, accept and reject from the keyboard, bulk decide, undo, edit to
gold, build a dataset from the inbox's filter and download it; and feedback text that tries to
run script stays text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from apps.curation.models import Decision
from apps.quality.selectors import verdict_current
from tests.conftest import preference, rating

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

XSS = (
    "<script>window.pwned = 1; alert('script')</script> "
    "<img src=x onerror=\"window.pwned = 2; alert('img')\"> "
    "[click me](javascript:alert('link'))"
)


def live(decisions: int | None = None, **filters):
    return Decision.objects.filter(undone_at__isnull=True, **filters)


def test_filter_move_and_decide_from_the_keyboard_then_undo(desk, add_events):
    events = add_events(
        *[rating(response=f"plain answer {i}", model="llama3") for i in range(4)],
        rating(response="the odd one about penguins", model="mistral"),
    )
    page = desk.go("/inbox/")
    assert page.locator("tr.row").count() == 5
    page.keyboard.press("/")
    page.keyboard.type("answer")
    page.select_option("select[name=type]", "rating")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**q=answer**")
    assert page.locator("tr.row").count() == 4
    desk.wait_until(lambda: "4 events" in page.inner_text("#match-count"))

    # newest first: rows are events[3], [2], [1], [0]; the first row is current
    page.keyboard.press("j")
    page.keyboard.press("j")
    page.keyboard.press("k")
    assert page.get_attribute("tr.row.current", "data-id") == str(events[2].id)
    page.keyboard.press("a")
    desk.wait_until(lambda: live(action="accept", event=events[2]).exists())
    desk.wait_until(lambda: page.get_attribute("tr.row.current", "data-id") == str(events[1].id))
    page.keyboard.press("r")
    page.wait_for_selector("#reason-picker:not([hidden])")
    page.keyboard.press("2")
    desk.wait_until(lambda: live(action="reject", event=events[1], reason="low_quality").exists())
    assert verdict_current(event_id=events[1].id).status == "rejected"
    # The row changes when the answer reaches the page, a moment after the database has it.
    judgement = page.locator(f"tr[data-id='{events[1].id}'] .judgement")
    desk.wait_until(lambda: judgement.inner_text() == "rejected")

    page.keyboard.press("u")  # undoes the reject
    desk.wait_until(lambda: not live(action="reject").exists())
    assert verdict_current(event_id=events[1].id).status == "accepted"
    assert live(action="accept").count() == 1
    assert not desk.errors, desk.errors


def test_bulk_on_selected_rows_and_on_the_whole_filter(desk, add_events):
    events = add_events(*[rating(response=f"bulk answer {i}") for i in range(6)])
    page = desk.go("/inbox/")
    page.wait_for_selector("tr.row.current")
    page.keyboard.press("x")
    page.keyboard.press("j")
    page.keyboard.press("x")
    assert page.inner_text("#selected-count") == "2"
    page.keyboard.press("t")
    page.wait_for_selector("#tag-picker:not([hidden])")
    page.keyboard.type("needs-review")
    page.keyboard.press("Enter")
    desk.wait_until(lambda: live(action="tag").count() == 2)
    batches = set(live(action="tag").values_list("batch", flat=True))
    assert len(batches) == 1 and None not in batches
    desk.wait_until(lambda: page.locator(".tag.curator", has_text="needs-review").count() == 2)

    page.click("#whole-selection")
    page.keyboard.press("r")
    page.wait_for_selector("#reason-picker:not([hidden])")
    with page.expect_navigation():  # a decision on the whole filter reloads the page
        page.keyboard.press("1")
    desk.wait_until(lambda: live(action="reject", reason="spam").count() == 6)
    assert any("Reject (spam) all 6 events" in d for d in desk.dialogs), desk.dialogs
    page.wait_for_selector("tr.row")
    page.keyboard.press("u")  # the whole bulk reject goes
    desk.wait_until(lambda: not live(action="reject").exists())
    assert all(verdict_current(event_id=e.id).status == "accepted" for e in events)


def test_edit_to_gold_from_the_inbox_and_undo_it_on_the_event_page(desk, add_events):
    (event,) = add_events(rating(response="Sydney is the capital.", rating=-1))
    page = desk.go("/inbox/")
    page.wait_for_selector("tr.row.current")
    page.keyboard.press("e")
    page.wait_for_url(f"**/events/{event.id}/#gold")
    gold = page.locator("#gold-text")
    page.wait_for_load_state("load")
    desk.wait_until(lambda: page.evaluate("document.activeElement.id") == "gold-text")
    assert gold.input_value() == "Sydney is the capital."
    gold.fill("Canberra is the capital of Australia.")
    page.keyboard.press("Control+Enter")
    desk.wait_until(lambda: live(action="gold").exists())
    assert live(action="gold").get().gold_response == "Canberra is the capital of Australia."
    page.wait_for_selector("#gold-state")
    page.click(f"[data-undo='{live(action='gold').get().id}']")
    desk.wait_until(lambda: not live(action="gold").exists())
    page.wait_for_selector("tr.undone")
    assert not desk.errors, desk.errors


def test_script_in_feedback_is_shown_as_text_and_never_runs(desk, add_events):
    (event,) = add_events(
        rating(comment=XSS, response=XSS, messages=[{"role": "user", "content": XSS}])
    )
    for path in ("/inbox/", f"/events/{event.id}/"):
        page = desk.go(path)
        page.wait_for_load_state("load")
        page.wait_for_timeout(300)
        assert page.evaluate("window.pwned") is None
        assert not [d for d in desk.dialogs if d.startswith("alert")], desk.dialogs
        assert page.locator("main img").count() == 0
        assert (
            page.locator("main script").count()
            == page.locator("main script[type='application/json']").count()
        )
        assert (
            page.evaluate(
                "[...document.querySelectorAll('a')].filter(a => /^\\s*javascript:/i.test(a.getAttribute('href') || '')).length"
            )
            == 0
        )
        assert "<script>window.pwned = 1;" in page.inner_text("main")
    assert page.inner_text("#comment").startswith("<script>window.pwned = 1;")
    html = page.content()
    assert "<script>window.pwned" not in html and "<img" not in html  # escaped: &lt;img
    assert not desk.errors, desk.errors


def test_build_a_dataset_from_the_inbox_filter_and_download_it(desk, add_events):
    add_events(
        *[
            preference(
                messages=[{"role": "user", "content": f"Question number {i}: what is {i} + {i}?"}],
                responses=[
                    {"model": "good", "content": f"{i} + {i} = {2 * i}."},
                    {"model": "bad", "content": "No idea, sorry."},
                ],
                choice=0,
            )
            for i in range(10)
        ],
        rating(response="not a pair on its own", model="other"),
    )
    page = desk.go("/inbox/?type=preference")
    page.click("#build-dataset")  # the recipe form, prefilled with the inbox's filter
    page.wait_for_selector("form.ds-form")
    assert page.input_value("form.ds-form select[name=type]") == "preference"
    page.fill("form.ds-form input[name=name]", "arith-dpo")
    page.select_option("form.ds-form select[name=kind]", "dpo")
    page.fill("form.ds-form input[name=test_fraction]", "0.2")
    page.click("form.ds-form button[type=submit]")
    page.wait_for_selector("#build")
    page.click("#build")
    page.wait_for_selector("#ds-status")
    # The page follows the build (a live bar) and reloads itself when it is done.
    desk.wait_until(lambda: page.inner_text("#ds-status") == "succeeded", timeout=30)

    with page.expect_download() as download:
        page.click(".ds-downloads a:has-text('train.jsonl')")
    rows = [json.loads(line) for line in Path(download.value.path()).read_text().splitlines()]
    assert 1 <= len(rows) <= 10  # the test split, by prompt, may hold some
    assert all(set(row) == {"prompt", "chosen", "rejected"} for row in rows)
    assert all(row["chosen"][0]["content"].endswith(".") for row in rows)
    assert all(row["rejected"][0]["content"] == "No idea, sorry." for row in rows)
    assert not desk.errors, desk.errors
