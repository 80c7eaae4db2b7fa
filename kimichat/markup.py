"""What a reply may put on the page: its Markdown, but no HTML that acts by itself.

A reply is written by Kimi, and Kimi can be steered by what it reads (a document, a web page).
The chatbot's HTML sanitizing lets tags through that act without the visitor meaning to:
``<audio>`` and ``<video>`` fetch from another host at once, a ``<form>`` sends a click there,
a ``<style>`` imports a sheet. So a reply's HTML is held to an allow-list of formatting tags;
every other tag is broken with an invisible zero-width space after its ``<``, which no HTML
parser reads as a tag (it shows as the same text). That holds wherever the tag stands, in
prose or in an inline code span, whichever way the page's Markdown renderer splits the line:
no guess about inline code is needed. Only fenced code blocks are left byte for byte (their
copy buttons must copy the code as written), and only where every renderer agrees they are
code: opened at a line's start, closed, and not after a line that could open a raw HTML block
(whose lines, fences included, are HTML to the renderer). Images naming another host are kept
off by the page's content security policy (middleware.py).
"""

from __future__ import annotations

import re

# Tags a reply may use as HTML: formatting only, none fetches or submits (<img> is held to the
# Space by the page policy).
ALLOWED_TAGS = frozenset(
    {
        *("a", "abbr", "b", "bdi", "bdo", "blockquote", "br", "caption", "center", "cite", "code", "col"),
        *("colgroup", "dd", "del", "details", "dfn", "div", "dl", "dt", "em", "figcaption", "figure", "font"),
        *("h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd", "li", "mark", "ol", "p", "pre"),
        *("q", "rp", "rt", "ruby", "s", "samp", "small", "span", "strong", "sub", "summary", "sup", "table"),
        *("tbody", "td", "tfoot", "th", "thead", "tr", "tt", "u", "ul", "var", "wbr"),
    }
)
BREAK = "\u200b"  # zero-width space: "<\u200baudio" is text to HTML and shows as "<audio"
# A tag name as HTML's tokenizer reads it runs to whitespace, "/" or ">"; only plain names can be
# real elements (a name with ":" or "@" is an autolink or an unknown element, which does nothing).
TAG = re.compile(r"<(?=/?([A-Za-z][^\s/>]*))")
ELEMENT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]*")
FENCE = re.compile(r" {0,3}(`{3,}|~{3,})(.*)")
# A line that may open a raw HTML block (CommonMark types 1-7), inside a quote or a list item too.
HTML_BLOCK_LINE = re.compile(
    r"(?:[ \t]*(?:>|[-*+]|\d{1,9}[.)])(?=[ \t]|$))*[ \t]*<(?:[!?/]|[A-Za-z][A-Za-z0-9-]*(?:[\s/>]|$))"
)


def _break_tag(match: re.Match[str]) -> str:
    name = match[1]
    acts = ELEMENT_NAME.fullmatch(name) is not None and name.lower() not in ALLOWED_TAGS
    return "<" + BREAK if acts else "<"


def _fence_end(lines: list[str], start: int, fence: str) -> int | None:
    """The line that closes the fence opened at ``start``, if any. Accepts every closing line
    CommonMark or marked would (so code here is code there): up to 3 spaces, at least as many of
    the same character, then fence characters or blanks only."""
    closing = re.compile(rf" {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}[`~]*[ \t]*")
    for index in range(start + 1, len(lines)):
        if closing.fullmatch(lines[index].rstrip("\r\n")):
            return index
    return None


def defuse(text: str) -> str:
    """``text`` with every tag that could act shown as text; fenced code left as it is."""
    if "<" not in text:
        return text
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    index, html_seen, unclosed = 0, False, set()
    while index < len(lines):
        opening = None if html_seen else FENCE.fullmatch(lines[index].rstrip("\r\n"))
        if opening and not (opening[1][0] == "`" and "`" in opening[2]) and opening[1] not in unclosed:
            end = _fence_end(lines, index, opening[1])
            if end is not None:
                out += lines[index : end + 1]
                index = end + 1
                continue
            unclosed.add(opening[1])  # still open at the end: the same fence further on is too
        html_seen = html_seen or HTML_BLOCK_LINE.match(lines[index]) is not None
        out.append(TAG.sub(_break_tag, lines[index]))
        index += 1
    return "".join(out)


def as_written(text: str) -> str:
    """A defused reply as Kimi wrote it, for a reader that is no browser (an agent, over MCP)."""
    return text.replace("<" + BREAK, "<")
