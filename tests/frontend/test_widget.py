"""The embeddable widget in headless Chromium: what a rater does (click, reasons, comment,
keyboard), what the network does (offline, reloads, lost answers, refusals) and what a hostile
host page does. Every check ends in the database: the event the server stored."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest

from apps.feedback.models import Comparison, Event, Rating
from tests.frontend.conftest import Site, wait_for_events, wait_until

sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason="browser tests need Playwright for Python (pip install playwright)",
)
expect = sync_api.expect

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

MESSAGES = [{"role": "user", "content": "What is the capital of Australia?"}]
REPLY = "Sydney is the capital of Australia."

ATTACH_ONE = f"""
  Sinkhole.attach(document.getElementById('reply'), {{
    messages: {json.dumps(MESSAGES)}, response: {json.dumps(REPLY)},
    model: 'llama3.1:8b', rater: 'user-77', tags: ['geo'], metadata: {{conversation: 'c-1'}}
  }});
"""
REPLY_DIV = f"<div id='reply'><p>{REPLY}</p></div>"


def rating_widget(page: Any) -> Any:
    return page.locator("sinkhole-rating").first


def outbox(page: Any) -> list[dict[str, Any]]:
    """The widget's localStorage outbox, as the page holds it."""
    return page.evaluate(
        """() => {
          for (let i = 0; i < localStorage.length; i++) {
            const name = localStorage.key(i);
            if (name.startsWith('sinkhole:outbox:')) return JSON.parse(localStorage.getItem(name));
          }
          return [];
        }"""
    )


def test_thumbs_down_with_a_reason_chip_and_a_comment_stores_that_rating(site: Site) -> None:
    page = site.open(
        REPLY_DIV, script=ATTACH_ONE, attrs={"data-reasons": "wrong=Plain wrong,rude,other"}
    )
    widget = rating_widget(page)
    widget.get_by_role("button", name="Bad response").click()
    chips = widget.get_by_role("group", name="What went wrong?").get_by_role("button")
    assert chips.all_inner_texts() == ["Plain wrong", "Rude", "Other"]  # from data-reasons
    widget.get_by_role("button", name="Plain wrong").click()
    widget.get_by_role("textbox", name="Add a comment (optional)").fill("It is Canberra.")
    widget.get_by_role("button", name="Send", exact=True).click()

    [event] = wait_for_events(site.tab, 1)
    payload = event.payload
    assert (event.type, event.source.name, event.model) == ("rating", "widget-host", "llama3.1:8b")
    assert payload["rating"] == -1
    assert payload["reason"] == "wrong"
    assert payload["comment"] == "It is Canberra."
    assert payload["messages"] == MESSAGES
    assert payload["response"] == REPLY
    assert payload["tags"] == ["geo"]
    assert payload["metadata"] == {"conversation": "c-1", "widget": "sinkhole-widget/1"}
    assert event.client_id == payload["id"]  # the browser named it
    assert len(event.client_id) == 36
    assert event.rater_hash and event.rater_hash != "user-77"
    # and the normalized row follows, written after commit by the normalize task
    assert wait_until(site.tab, lambda: Rating.objects.filter(event=event).first()).value == -1
    expect(widget.get_by_role("status")).to_have_text(
        "Thanks for your feedback · Plain wrong · “It is Canberra.”"
    )
    assert widget.get_by_role("button", name="Bad response").get_attribute("aria-pressed") == "true"
    assert widget.get_by_role("button", name="Bad response").is_disabled()
    page.wait_for_function("() => Sinkhole.pending() === 0")
    assert site.tab.errors == []


def test_thumbs_up_offers_its_own_reasons_and_can_be_sent_without_details(site: Site) -> None:
    page = site.open(REPLY_DIV, script=ATTACH_ONE)
    widget = rating_widget(page)
    widget.get_by_role("button", name="Good response").click()
    assert (
        widget.get_by_role("group", name="What was good?")
        .get_by_role("button", name="Accurate")
        .is_visible()
    )
    widget.get_by_role("button", name="Close and send").click()

    [event] = wait_for_events(site.tab, 1)
    assert event.payload["rating"] == 1
    assert "reason" not in event.payload and "comment" not in event.payload


def test_a_thumb_left_alone_is_sent_once_the_rater_moves_on(site: Site) -> None:
    page = site.open(
        REPLY_DIV + "<input id='chat-input'>", script=ATTACH_ONE, attrs={"data-hold": "300"}
    )
    rating_widget(page).get_by_role("button", name="Good response").click()
    page.locator("#chat-input").click()  # back to chatting: focus leaves the widget

    [event] = wait_for_events(site.tab, 1)
    assert event.payload["rating"] == 1
    assert page.evaluate("document.activeElement.id") == "chat-input"  # focus was not stolen


def test_a_thumb_is_sent_when_the_rater_leaves_the_page(site: Site) -> None:
    page = site.open(REPLY_DIV, script=ATTACH_ONE)
    widget = rating_widget(page)
    widget.get_by_role("button", name="Bad response").click()
    widget.get_by_role("button", name="Too verbose").click()
    page.goto("about:blank")  # pagehide: the open draft goes out as a keepalive request

    [event] = wait_for_events(site.tab, 1)
    assert (event.payload["rating"], event.payload["reason"]) == (-1, "too_verbose")
    # that request is invisible to the tab's teardown: let the server finish with it first
    wait_until(site.tab, lambda: Rating.objects.filter(event=event).exists())


def test_the_ab_chooser_stores_a_preference_with_each_choice(site: Site) -> None:
    pairs = "".join(f"<div id='pair-{i}'></div>" for i in range(4))
    script = """
      for (let i = 0; i < 4; i++) Sinkhole.compare(document.getElementById('pair-' + i), {
        messages: [{role: 'user', content: 'Say hi'}], rater: 'user-9', eventId: 'pair-' + i,
        responses: [{content: 'Hi!', model: 'model-a'}, {content: 'Hello.', model: 'model-b'}]
      });
    """
    page = site.open(pairs, script=script)
    buttons = ["A is better", "B is better", "It's a tie", "Both are bad"]
    for i, name in enumerate(buttons):
        page.locator(f"#pair-{i} sinkhole-compare").get_by_role("button", name=name).click()

    events = wait_for_events(site.tab, 4, type="preference")
    choices = {e.client_id: e.payload["choice"] for e in events}
    assert choices == {"pair-0": 0, "pair-1": 1, "pair-2": "tie", "pair-3": "both_bad"}
    for event in events:
        assert event.payload["responses"] == [
            {"content": "Hi!", "model": "model-a"},
            {"content": "Hello.", "model": "model-b"},
        ]
    outcomes = wait_until(
        site.tab, lambda: Comparison.objects.count() == 4 and Comparison.objects.all()
    )
    assert sorted(c.outcome for c in outcomes) == ["a", "b", "both_bad", "tie"]
    chooser = page.locator("#pair-1 sinkhole-compare")
    expect(chooser.get_by_role("status")).to_have_text("Thanks for your feedback · B is better")
    assert chooser.get_by_role("group", name="Which response is better?").is_visible()
    assert chooser.get_by_role("button", name="A is better").is_disabled()


def test_markup_alone_works_and_ids_are_uuids_even_without_crypto_random_uuid(site: Site) -> None:
    body = """
      <p>Hi there!</p>
      <sinkhole-rating prompt="Say hi" response="Hi there!" model="m-1" rater="u-1"
                       reasons="rude,off_topic=Off topic"></sinkhole-rating>
      <sinkhole-compare prompt="Say hi" response-a="Hi!" model-a="a" response-b="Hello." model-b="b">
      </sinkhole-compare>
    """
    # as on a plain-http LAN address, where crypto.randomUUID does not exist
    page = site.open(body, before="delete Crypto.prototype.randomUUID;")
    rating = page.locator("sinkhole-rating")
    rating.get_by_role("button", name="Bad response").click()
    rating.get_by_role("button", name="Off topic").click()
    rating.get_by_role("button", name="Send", exact=True).click()
    page.locator("sinkhole-compare").get_by_role("button", name="Both are bad").click()

    thumbs, choice = wait_for_events(site.tab, 2)
    assert thumbs.payload["messages"] == [{"role": "user", "content": "Say hi"}]
    assert (thumbs.payload["response"], thumbs.model, thumbs.payload["reason"]) == (
        "Hi there!",
        "m-1",
        "off_topic",
    )
    assert choice.payload["responses"] == [
        {"content": "Hi!", "model": "a"},
        {"content": "Hello.", "model": "b"},
    ]
    assert choice.payload["choice"] == "both_bad"
    uuid4 = r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
    assert re.match(uuid4, thumbs.client_id) and re.match(uuid4, choice.client_id)
    assert thumbs.client_id != choice.client_id


def test_compare_takes_plain_strings_as_responses(site: Site) -> None:
    script = """
      Sinkhole.compare(document.getElementById('pair'), {
        messages: [{role: 'user', content: 'Say hi'}], responses: ['Hi!', 'Hello.']
      });
    """
    page = site.open("<div id='pair'></div>", script=script)
    page.locator("sinkhole-compare").get_by_role("button", name="It's a tie").click()
    [event] = wait_for_events(site.tab, 1)
    assert event.payload["responses"] == [{"content": "Hi!"}, {"content": "Hello."}]
    assert event.payload["choice"] == "tie"


def test_it_works_with_the_keyboard_alone_and_shows_where_the_focus_is(site: Site) -> None:
    page = site.open("<input id='before' aria-label='chat'>" + REPLY_DIV, script=ATTACH_ONE)
    page.locator("#before").focus()
    keys = page.keyboard
    keys.press("Tab")
    keys.press("Tab")
    assert focused_label(page) == "Bad response"
    assert focus_ring(page) == "solid"  # a visible focus ring, in the widget's accent colour
    keys.press("Enter")
    keys.press("Tab")
    assert focused_label(page) == "Not factually correct"
    keys.press("Tab")
    assert focused_label(page) == "Didn't follow instructions"
    keys.press("Space")
    for _ in range(6):  # past the other five chips, into the comment box
        keys.press("Tab")
    assert focused_label(page) == "Add a comment (optional)"
    keys.type("Ignored the word limit.")
    keys.press("Tab")
    assert focused_label(page) == "Send"
    keys.press("Enter")

    [event] = wait_for_events(site.tab, 1)
    assert event.payload["rating"] == -1
    assert event.payload["reason"] == "didnt_follow_instructions"
    assert event.payload["comment"] == "Ignored the word limit."
    # the focus lands on the thanks, where a screen reader reads it, not on the page's body
    assert (
        page.evaluate("document.activeElement.shadowRoot.activeElement.getAttribute('role')")
        == "status"
    )


def test_escape_sends_the_thumb_as_it_stands(site: Site) -> None:
    page = site.open(REPLY_DIV, script=ATTACH_ONE)
    widget = rating_widget(page)
    widget.get_by_role("button", name="Good response").click()
    widget.get_by_role("button", name="Helpful").click()
    page.keyboard.press("Escape")
    [event] = wait_for_events(site.tab, 1)
    assert (event.payload["rating"], event.payload["reason"]) == (1, "helpful")


def test_feedback_given_offline_is_kept_and_delivered_once_back_online(site: Site) -> None:
    page = site.open(REPLY_DIV, script=ATTACH_ONE)
    site.tab.context.set_offline(True)
    widget = rating_widget(page)
    widget.get_by_role("button", name="Bad response").click()
    widget.get_by_role("button", name="Send", exact=True).click()
    # four failed tries (about 1, 2 and 4 s apart): the next one is 4 to 8 s away
    page.wait_for_function(
        "() => JSON.parse(localStorage.getItem(Object.keys(localStorage)[0]))[0].n >= 4",
        timeout=15_000,
    )
    [queued] = outbox(page)
    assert Event.objects.count() == 0

    site.tab.context.set_offline(False)  # the browser fires `online`: the outbox goes at once
    [event] = wait_for_events(site.tab, 1, timeout=2.5)
    assert event.client_id == queued["e"]["id"]
    page.wait_for_function("() => Sinkhole.pending() === 0")


def test_feedback_queued_before_a_reload_is_delivered_once_after_it(site: Site) -> None:
    page = site.open(REPLY_DIV, script=ATTACH_ONE)
    blocked: list[str] = []

    def refuse(route: Any) -> None:
        blocked.append(route.request.method)
        route.abort("internetdisconnected")

    page.route(f"{site.endpoint}/api/v1/feedback", refuse)
    widget = rating_widget(page)
    widget.get_by_role("button", name="Good response").click()
    widget.get_by_role("button", name="Send", exact=True).click()
    page.wait_for_function(
        "() => Sinkhole.pending() === 1 && document.querySelector('sinkhole-rating')"
    )
    [queued] = outbox(page)

    page.reload()  # still cut off: the load-time flush fails too, and keeps the event
    page.wait_for_function("() => window.Sinkhole")
    page.wait_for_timeout(300)
    assert site.pending() == 1
    assert outbox(page)[0]["e"]["id"] == queued["e"]["id"]
    assert len(blocked) >= 2 and Event.objects.count() == 0

    page.unroute(f"{site.endpoint}/api/v1/feedback")
    page.reload()  # back: the page load flushes the outbox
    [event] = wait_for_events(site.tab, 1)
    assert event.client_id == queued["e"]["id"]
    page.wait_for_function("() => Sinkhole.pending() === 0")
    page.reload()
    page.wait_for_timeout(500)
    assert Event.objects.count() == 1


def test_an_answer_lost_on_the_way_back_is_retried_and_stored_once(site: Site) -> None:
    page = site.open(REPLY_DIV, script=ATTACH_ONE)
    answers: list[int] = []

    def deliver_then_lose_the_answer(route: Any) -> None:
        if route.request.method == "POST" and not answers:
            answers.append(route.fetch().status)  # the server stores it…
            route.abort("connectionreset")  # …and the browser never hears back
        else:
            route.continue_()

    page.route(f"{site.endpoint}/api/v1/feedback", deliver_then_lose_the_answer)
    widget = rating_widget(page)
    widget.get_by_role("button", name="Good response").click()
    widget.get_by_role("button", name="Send", exact=True).click()

    page.wait_for_function("() => Sinkhole.pending() === 0")  # the retry answers `duplicate`
    assert answers == [207]
    [event] = wait_for_events(site.tab, 1)
    assert event.payload["rating"] == 1


def test_server_errors_are_retried_with_backoff(site: Site) -> None:
    page = site.open(REPLY_DIV, script=ATTACH_ONE)
    tries: list[float] = []

    def unavailable_twice(route: Any) -> None:
        if route.request.method != "POST":
            route.continue_()
            return
        tries.append(time.monotonic() * 1000)
        if len(tries) <= 2:
            route.fulfill(
                status=503, headers=cors_headers(site), content_type="application/json", body="{}"
            )
        else:
            route.continue_()

    page.route(f"{site.endpoint}/api/v1/feedback", unavailable_twice)
    widget = rating_widget(page)
    widget.get_by_role("button", name="Good response").click()
    widget.get_by_role("button", name="Send", exact=True).click()

    wait_for_events(site.tab, 1)
    assert len(tries) == 3
    first_wait, second_wait = tries[1] - tries[0], tries[2] - tries[1]
    assert 400 <= first_wait and 900 <= second_wait  # about 1 s, then about 2 s (with jitter)


def test_an_event_the_server_refuses_is_dropped_with_a_warning(site: Site) -> None:
    page = site.open(REPLY_DIV, script=ATTACH_ONE)
    page.route(
        f"{site.endpoint}/api/v1/feedback",
        lambda route: (
            route.fulfill(
                status=401,
                headers=cors_headers(site),
                content_type="application/json",
                body='{"error": {}}',
            )
            if route.request.method == "POST"
            else route.continue_()
        ),
    )
    widget = rating_widget(page)
    widget.get_by_role("button", name="Good response").click()
    widget.get_by_role("button", name="Send", exact=True).click()
    page.wait_for_function("() => Sinkhole.pending() === 0")
    assert any("refused (401), dropped" in m for m in site.tab.warnings())


def test_an_invalid_item_in_the_batch_is_dropped_and_its_neighbours_are_stored(site: Site) -> None:
    # No messages: the server refuses that one event (207, item `error`) and keeps the other.
    script = (
        ATTACH_ONE
        + """
      Sinkhole.attach(document.getElementById('bad'), {response: 'no conversation given'});
    """
    )
    page = site.open(REPLY_DIV + "<div id='bad'></div>", script=script)
    page.route(f"{site.endpoint}/api/v1/feedback", lambda route: route.abort())
    for widget in (page.locator("#reply sinkhole-rating"), page.locator("#bad sinkhole-rating")):
        widget.get_by_role("button", name="Good response").click()
        widget.get_by_role("button", name="Send", exact=True).click()
    page.wait_for_function("() => Sinkhole.pending() === 2")
    page.unroute(f"{site.endpoint}/api/v1/feedback")
    page.evaluate("() => Sinkhole.flush()")

    page.wait_for_function("() => Sinkhole.pending() === 0")
    [event] = wait_for_events(site.tab, 1)
    assert event.payload["response"] == REPLY
    assert any("refused (207), dropped" in m for m in site.tab.warnings())


def test_it_is_themable_from_the_host_page(site: Site) -> None:
    head = "<style>#custom { --sinkhole-accent: rgb(255, 0, 128); }</style>"
    body = REPLY_DIV + "<div id='custom'></div><div id='dark'></div>"
    script = (
        ATTACH_ONE
        + """
      Sinkhole.attach(document.getElementById('custom'), {messages: [{role: 'user', content: 'x'}], response: 'y'});
      Sinkhole.attach(document.getElementById('dark'), {messages: [{role: 'user', content: 'x'}], response: 'y', theme: 'dark'});
    """
    )
    page = site.open(body, script=script, head=head)
    custom = page.locator("#custom sinkhole-rating").get_by_role("button", name="Good response")
    custom.click()
    assert background(custom) == "rgb(255, 0, 128)"
    light = background(
        page.locator("#reply sinkhole-rating").get_by_role("button", name="Good response")
    )
    dark = background(
        page.locator("#dark sinkhole-rating").get_by_role("button", name="Good response")
    )
    assert (light, dark) == ("rgb(255, 255, 255)", "rgb(31, 36, 48)")


HOSTILE_CSS = """<style>
  * { display: none !important; visibility: hidden !important; opacity: 0 !important;
      pointer-events: none !important; color: transparent !important; font-size: 0 !important; }
  html, body, main, #reply, #pair { display: block !important; visibility: visible !important;
      opacity: 1 !important; pointer-events: auto !important; }
  sinkhole-rating, sinkhole-compare { display: none !important; position: absolute !important;
      left: -9999px !important; width: 0 !important; height: 0 !important; overflow: hidden !important; }
  button, textarea, div, span { all: unset !important; display: none !important; }
</style>"""

# Patched before the widget loads: prototype methods its own code must not depend on.
HOSTILE_BEFORE = """
  for (const name of ['map', 'forEach', 'filter', 'push', 'pop', 'shift', 'join', 'indexOf', 'includes',
                      'slice', 'splice', 'concat', 'reduce', 'some', 'every', 'find', 'findIndex', 'sort']) {
    Array.prototype[name] = function () { throw new Error('hijacked Array.prototype.' + name); };
  }
  Array.prototype.toJSON = function () { return 'hijacked'; };
  Object.prototype.toJSON = function () { return 'hijacked'; };
"""
# Patched after it loads, before anyone clicks: globals a later script might replace.
HOSTILE_AFTER = """
  window.fetch = () => Promise.reject(new Error('hijacked fetch'));
  window.XMLHttpRequest = function () { throw new Error('hijacked XHR'); };
  JSON.stringify = () => '"hijacked"';
  JSON.parse = () => { throw new Error('hijacked JSON.parse'); };
  Storage.prototype.setItem = function () { throw new Error('hijacked setItem'); };
  Storage.prototype.getItem = () => '[]';
  EventTarget.prototype.addEventListener = function () {};
  Element.prototype.attachShadow = function () { throw new Error('hijacked attachShadow'); };
  Element.prototype.setAttribute = function () { throw new Error('hijacked setAttribute'); };
  Node.prototype.appendChild = function () { throw new Error('hijacked appendChild'); };
  document.createElement = () => { throw new Error('hijacked createElement'); };
  Object.defineProperty(Object.prototype, 'reason', {value: 'polluted', writable: true, configurable: true});
  Object.prototype.rating = 1;
  Object.prototype.choice = 'tie';
  window.setTimeout = () => 0;
"""


def test_a_hostile_host_page_can_neither_break_it_nor_run_script_through_it(site: Site) -> None:
    xss = "<img src=x onerror=alert(1)>"
    reasons = "evil=<b onmouseover=alert(2)>bold</b>,other"
    script = (
        HOSTILE_AFTER
        + ATTACH_ONE
        + """
      Sinkhole.compare(document.getElementById('pair'), {
        messages: [{role: 'user', content: 'Say hi'}],
        responses: [{content: '<script>alert(3)</' + 'script>', model: 'a'}, {content: 'Hello.', model: 'b'}]
      });
    """
    )
    page = site.open(
        REPLY_DIV + "<div id='pair'></div>",
        head=HOSTILE_CSS,
        before=HOSTILE_BEFORE,
        script=script,
        attrs={"data-reasons": reasons},
        wait=False,
    )
    # Only locators from here on: they run in Playwright's own isolated world, which the page's
    # patched built-ins cannot reach (its main-world helpers call Array.prototype.sort).
    widget = rating_widget(page)
    thumbs_down = widget.get_by_role("button", name="Bad response")
    assert thumbs_down.is_visible()  # the page's !important rules do not hide it
    thumbs_down.click()
    chip = widget.get_by_role("button", name="<b onmouseover=alert(2)>bold</b>")  # a label, as text
    chip.hover()
    chip.click()
    widget.get_by_role("textbox", name="Add a comment (optional)").fill(xss)
    widget.get_by_role("button", name="Send", exact=True).click()
    page.locator("#pair sinkhole-compare").get_by_role("button", name="B is better").click()

    rating, preference = wait_for_events(site.tab, 2)
    assert rating.payload["comment"] == xss
    assert rating.payload["reason"] == "evil"
    assert rating.payload["rating"] == -1
    assert rating.payload["messages"] == MESSAGES
    assert preference.payload["choice"] == 1
    assert preference.payload["responses"][0]["content"] == "<script>alert(3)</script>"
    expect(widget.get_by_role("status")).to_contain_text(f"· “{xss}”")  # shown back, as text
    expect(
        page.locator("sinkhole-rating, sinkhole-compare").locator("img, b, script")
    ).to_have_count(0)
    assert site.tab.dialogs == []
    assert [e for e in site.tab.errors if "hijacked" not in e] == []


# --- helpers --------------------------------------------------------------------------------


def focused_label(page: Any) -> str:
    """The accessible label (aria-label, else text) of what has the keyboard focus."""
    return page.evaluate(
        """() => {
          let el = document.activeElement;
          while (el && el.shadowRoot && el.shadowRoot.activeElement) el = el.shadowRoot.activeElement;
          return el.getAttribute('aria-label') || el.textContent;
        }"""
    )


def focus_ring(page: Any) -> str:
    return page.evaluate(
        """() => {
          let el = document.activeElement;
          while (el && el.shadowRoot && el.shadowRoot.activeElement) el = el.shadowRoot.activeElement;
          return getComputedStyle(el).outlineStyle;
        }"""
    )


def cors_headers(site: Site) -> dict[str, str]:
    """What a made-up answer needs for the browser to show it to the page at all."""
    return {"Access-Control-Allow-Origin": site.origin}


def background(locator: Any) -> str:
    return locator.evaluate("el => getComputedStyle(el).backgroundColor")
