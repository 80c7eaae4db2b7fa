"""What a reply may put on the page: its Markdown, but nothing that acts by itself.

A reply is written by Kimi, and Kimi can be steered by what it reads (a document, a web page).
The chatbot's HTML sanitizing lets some tags through that act without the visitor meaning to:
a ``<form>`` sends a click, or what is typed into it, to another host; ``<audio>`` and
``<video>`` fetch their sources from another host at once (seen in the browser test). Outside
code, those tags are escaped so they show as text; inside code they already do. Images naming
another host are kept off by the page's content security policy (middleware.py), which is
limited to images and form targets because Gradio's page needs its inline scripts.
"""

from __future__ import annotations

import re

CODE = re.compile(r"(```[\s\S]*?(?:```|$)|~~~[\s\S]*?(?:~~~|$)|`[^`\n]*`)")
ACTING = "form|input|button|select|textarea|option|optgroup|fieldset|datalist|output|audio|video|source|track"
ACTING_TAG = re.compile(rf"<(/?\s*(?:{ACTING}|iframe|frame|object|embed|link|meta|base|picture)\b)", re.I)


def defuse(text: str) -> str:
    """``text`` with every acting tag outside code shown as text (``&lt;form``), code untouched."""
    parts = CODE.split(text)
    return "".join(part if index % 2 else ACTING_TAG.sub(r"&lt;\1", part) for index, part in enumerate(parts))
