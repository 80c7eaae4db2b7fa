"""The Space as an MCP server: two tools for agents, over the chat service and limits the page uses.

Gradio makes a tool of every public endpoint (``launch(mcp_server=True)``); the page's steps and
ChatInterface's ``/chat`` are undocumented, so these are the only two. They run past Gradio's
queue (``queue=False``), and that is deliberate: Gradio then calls them with the MCP request itself,
so a caller's address is read as a page visitor's is (address.py), where a queued call comes back
over loopback sharing one session with every other agent. What the queue bounded, ``MCP_CALLS``
does: calls past it are refused. A caller is one visitor: its address (which is also its session:
one reply at a time, one visit's token budget a day); the Space's key, never one of the caller's.
"""

from __future__ import annotations

import json

import gradio as gr

from .chat import ChatService
from .guard import Visitor, visitor_ids
from .i18n import Lang, pick_lang, t
from .reply import Update, plain


class Refused(gr.Error):
    """A tool's refusal, in a sentence: Gradio shows a ``gr.Error``'s message to API callers, and the
    MCP server makes the error result of ``str()``, which for ``gr.Error`` is the message quoted."""

    def __str__(self) -> str:
        return str(self.message)


class Tools:
    """``list_personas`` and ``ask_persona``, as ``gr.api`` endpoints of the page (``register``)."""

    def __init__(self, service: ChatService):
        self.service = service
        self.running = 0  # calls in progress, at most settings.mcp_calls

    def register(self) -> None:
        """The two tools as API endpoints, and so MCP tools (inside the page's ``gr.Blocks``)."""
        gr.api(self.list_personas, queue=False)
        gr.api(self.ask_persona, queue=False)

    def list_personas(self) -> str:
        """List the personas of this Space: characters with their own voice, instructions and abilities
        (documents, images, web_search). ask_persona sends them text; a web_search persona searches by itself.

        Returns:
            A JSON list of personas, each with its id (for ask_persona), name, description and abilities.
        """
        personas = [
            {
                "id": p.id,
                "name": p.name.get("en"),
                "description": p.description.get("en"),
                "abilities": [a for a in ("documents", "images", "web_search") if getattr(p, a)],
            }
            for p in self.service.personas.visible
        ]
        return json.dumps(personas, ensure_ascii=False)

    async def ask_persona(self, persona: str, message: str, request: gr.Request, model: str = "") -> str:
        """Ask one of this Space's personas (a character with its own instructions, running on Moonshot's
        Kimi) a question, and get its whole answer. Each call is a new conversation; a web-search
        persona searches the web itself, and says so in the first line.

        Args:
            persona: The persona's id, as list_personas gives it (for example "translator").
            message: What to ask or say to the persona, in any language (Chinese and English work best).
            model: A Kimi model id to use instead of the persona's own (empty: the persona's).

        Returns:
            The persona's answer as plain text (its reasoning left out).
        """
        lang, service = pick_lang(request.headers.get("accept-language")), self.service
        personas, models = [p.id for p in service.personas.visible], [m.id for m in service.catalog.cached_models]
        if persona not in personas:
            raise Refused(t("unknown_persona", lang, persona=persona, ids=", ".join(personas)))
        if model and model not in models:
            raise Refused(t("model_not_offered", lang, model=model, ids=", ".join(models)))
        if self.running >= service.settings.mcp_calls:
            raise Refused(t("mcp_busy", lang))
        self.running += 1
        try:
            return await self._answer(persona, message, model, lang, request)
        finally:
            self.running -= 1

    async def _answer(self, persona: str, message: str, model: str, lang: Lang, request: gr.Request) -> str:
        """The reply's last update as text; a reply that is only notes (a refusal) is the tool's error."""
        last = Update([])
        async for update in self.service.reply(message, [], persona, model or None, None, lang, self.caller(request)):
            last = update
        answer, notes = plain(last.messages)
        if not answer:
            raise Refused(" ".join(notes))
        return "\n\n".join([answer, *(f"({note})" for note in notes)])

    def caller(self, request: gr.Request) -> Visitor:
        """Who calls: their address, read as a page visitor's is; it is their session too."""
        address = self.service.guard.addresses.of(request)
        return Visitor(visitor_ids(address, f"mcp-{address}"))
