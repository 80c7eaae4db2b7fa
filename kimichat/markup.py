"""What a reply may put on the page: its Markdown, but no form.

A reply is written by Kimi, and Kimi can be steered by what it reads (a document, a web page):
a ``<form>`` in a reply would survive the chatbot's HTML sanitizing and send the visitor's
click, or what they type into it, to another host. Outside code, form tags are escaped so they
show as text; inside code they already do. (Images naming another host are kept off by the
page's content security policy: middleware.py.)
"""

from __future__ import annotations

import re

CODE = re.compile(r"(```[\s\S]*?(?:```|$)|~~~[\s\S]*?(?:~~~|$)|`[^`\n]*`)")
FORM_TAG = re.compile(r"<(/?\s*(?:form|input|button|select|textarea|option|optgroup|fieldset|datalist|output)\b)", re.I)


def defuse_forms(text: str) -> str:
    """``text`` with every form tag outside code shown as text (``&lt;form``), code untouched."""
    parts = CODE.split(text)
    return "".join(part if index % 2 else FORM_TAG.sub(r"&lt;\1", part) for index, part in enumerate(parts))
