"""What a reply may put on the page (markup.py): formatting HTML, and every other tag shown as text
wherever it stands; fenced code is left as written only where every renderer sees code."""

from __future__ import annotations

import re

import pytest

from kimichat.markup import BREAK, defuse

ACTING = re.compile(r"<(?!/?(?:b|i|em|strong|code|pre|details|summary|div|span|p)\b)/?[A-Za-z]")


@pytest.mark.parametrize(
    "text",
    [
        'see \\`<audio src="https://h/leak" autoplay></audio>\\` ok',  # escaped backticks are not code
        "a ~~~ <video src=https://h/v autoplay></video> ~~~ b",  # a fence in mid-line is not one
        "a ``` <audio src=https://h/a autoplay> b",  # an unclosed fence in mid-line either
        "```\nnever closed <audio src=https://h/a autoplay>",  # an unclosed fence at a line's start
        "```\n<audio src=https://h/a>\n``` and more",  # a closing fence with text after is no close
        "<pre>\n\n```\n<audio src=https://h/a autoplay>\n```\n</pre>",  # a fence inside an HTML block
        "- <pre>\n\n  ```\n  <audio src=https://h/a>\n  ```",  # the same inside a list item
        "> <div>\n> ```\n> <video src=https://h/v>\n> ```",  # and in a quote
        "<!-- x --!><audio src=https://h/a autoplay>",  # past a comment that ends early
        "<AuDiO src=https://h/a autoplay>",  # any case
        "<audio\nsrc=https://h/a\nautoplay>",  # attributes over several lines
        "<video/src=https://h/v autoplay>",  # a slash for a space
        "`<style>@import url(https://h/s.css)</style>`",  # inside an inline code span too
        "``<object data=https://h/o>``",
        "<svg><image href=https://h/i /></svg>",
        "<gradio-app src=https://h.hf.space></gradio-app>",  # the page's own custom element
        "<math><mtext><iframe src=https://h/f></iframe></mtext></math>",
        "&lt;a&gt; <embed src=https://h/e>",
        "<link rel=stylesheet href=https://h/s.css><meta http-equiv=refresh content='0;url=https://h/m'>",
    ],
)
def test_no_tag_that_acts_is_left_outside_fenced_code(text):
    assert not ACTING.search(defuse(text))


def test_the_text_shows_the_same_with_an_invisible_break():
    assert defuse("<audio src=x>") == f"<{BREAK}audio src=x>"
    assert defuse("</form>") == f"<{BREAK}/form>"


@pytest.mark.parametrize(
    "code",
    [
        '```html\n<video src="clip.mp4" controls></video>\n```',
        "~~~\n<form><input></form>\n~~~",
        "````md\n```\n<audio src=a.mp3>\n```\n````",  # a longer fence holds a shorter one
        "   ```\n<iframe src=page.html></iframe>\n   ```",  # indented up to three spaces
        "```\n<style>p{}</style>\n```~~ ",  # a closing line marked accepts (fence characters after)
    ],
)
def test_fenced_code_is_left_byte_for_byte(code):
    text = f"Here:\n{code}\nThat is all."
    assert defuse(text) == text


def test_formatting_and_autolinks_stay_as_they_are():
    text = "<b>bold</b> <details><summary>more</summary>hi</details> <https://example.com> <me@example.com> 3 < 4"
    assert defuse(text) == text
