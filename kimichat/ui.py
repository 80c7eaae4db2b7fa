"""The page: the persona picker above a ``gr.ChatInterface``, the settings, and their events.

Everything per visitor lives in the visitor's page (the chat, the picker), their browser's
storage (ChatInterface's saved chats) or, for API callers, Gradio's per-session values;
module state holds only what all visitors may share: settings, the persona file, one Kimi
client, the model list. The handlers are the methods of ``Page``, so tests can call them.
"""

from __future__ import annotations

import hashlib
import inspect
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

import gradio as gr
from starlette.middleware import Middleware

from .address import AddressReader
from .attachments import ACCEPTED
from .chat import ChatService
from .components import ChatView, MessageBox
from .conversation import conversation_persona
from .guard import EdgeGate, Visitor, visitor_ids
from .i18n import LANGS, STRINGS, Lang, pick_lang, t
from .middleware import BodyLimit, ClosedRoutes, DirectCallLimit, NoFileUrls, PagePolicy, UploadLimit, megabytes
from .pagecache import PageCache
from .personas import Persona, PersonaFile
from .reply import Update
from .settings import Settings
from .tools import Tools

LATEX = [
    {"left": "$$", "right": "$$", "display": True},
    {"left": "\\[", "right": "\\]", "display": True},
    {"left": "\\(", "right": "\\)", "display": False},
]  # no single "$": prices such as "$5 and $10" must stay text

STATIC = Path(__file__).parent / "static"
CSS = (STATIC / "app.css").read_text(encoding="utf-8")
EXPORT_JS = (STATIC / "export.js").read_text(encoding="utf-8")


# The labels the page shows through Gradio's i18n, which picks by the browser's language. Only these
# go in the page's config (every string of the app, four times over, had been a third of it: 36 kB
# sent and serialized with every page).
PAGE_LABELS = ("persona", "model", "temperature", "settings", "duplicate", "placeholder", "export")
PAGE_LABELS += ("visitor_key", "visitor_key_info")


def _i18n() -> gr.I18n:
    tables = {lang: {key: STRINGS[key][lang] for key in PAGE_LABELS} for lang in LANGS}
    return gr.I18n(en=tables["en"], zh=tables["zh"], **{"zh-CN": tables["zh"], "zh-TW": tables["zh"]})


LABELS = _i18n()  # for launch(i18n=...)


def label(key: str) -> Any:
    """A label the browser shows in its own language; a key not in PAGE_LABELS stops startup."""
    if key not in PAGE_LABELS:
        raise KeyError(f"{key!r} is not in PAGE_LABELS (kimichat/ui.py)")
    return LABELS(key)


def lang_of(request: gr.Request | None) -> Lang:
    return pick_lang(request.headers.get("accept-language") if request else None)


def greeting(persona: Persona, lang: Lang) -> str:
    """What an empty chat shows above the persona's starters."""
    return persona.greeting.get(lang) if persona.greeting else f"{persona.avatar} {persona.name.get(lang)}"


def starters(persona: Persona, lang: Lang) -> list[dict[str, str]]:
    """The persona's conversation starters, as the chatbot's examples (a click sends the text)."""
    return [{"text": ex.text.get(lang), "display_text": (ex.label or ex.text).get(lang)} for ex in persona.examples]


def setup_panel(settings: Settings, lang: Lang) -> str:
    """For an owner whose Space (often a fresh duplicate) has no key yet: how to add one."""
    url = settings.settings_url
    where = f"[{t('settings_page', lang)}]({url})" if url else t("settings_page", lang)
    return t("setup", lang, settings=where)


def persona_card(persona: Persona, lang: Lang) -> str:
    """The persona's name, then its category (if it has one) and what it does."""
    category = f"**{persona.category.get(lang)}** · " if persona.category else ""
    return f"### {persona.avatar} {persona.name.get(lang)}\n{category}{persona.description.get(lang)}"


def persona_choices(personas: PersonaFile, lang: Lang) -> list[tuple[str, str]]:
    return [(f"{p.avatar} {p.name.get(lang)}", p.id) for p in personas.visible]


def usage_line(update: Update, lang: Lang) -> str:
    """Under the chat: this reply's tokens (how many of its input Kimi had cached), and the
    conversation's so far."""
    usage = update.usage
    if usage is None:
        return ""
    return t(
        "usage_cached" if usage.cached_tokens else "usage",
        lang,
        reply=usage.total_tokens,
        prompt=usage.prompt_tokens,
        cached=usage.cached_tokens,
        completion=usage.completion_tokens,
        total=update.conversation_tokens,
        model=update.model,
    )


def write_avatars(personas: PersonaFile) -> dict[str, str]:
    """One small SVG per persona showing its emoji, for the chat's bot avatar. The folder is named by
    its contents, so a rebuild (hot reload, tests) reuses it and its static path instead of adding
    another to Gradio's process-wide list (SVGs are shown inline only from a static path)."""
    svgs = {
        persona.id: '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64"><text x="32" y="34" font-size="46" '
        f'text-anchor="middle" dominant-baseline="middle">{escape(persona.avatar)}</text></svg>'
        for persona in personas.personas
    }
    digest = hashlib.sha256(repr(sorted(svgs.items())).encode()).hexdigest()[:16]
    folder = Path(tempfile.gettempdir()) / f"kimichat-avatars-{digest}"
    folder.mkdir(exist_ok=True)
    for persona_id, svg in svgs.items():
        path = folder / f"{persona_id}.svg"
        if not path.exists():
            path.write_text(svg, encoding="utf-8")
    gr.set_static_paths([folder])
    return {persona_id: str(folder / f"{persona_id}.svg") for persona_id in svgs}


@dataclass(frozen=True)
class Parts:
    """The components the handlers update (made by ``build``), so a handler says which it sets."""

    setup: gr.Markdown
    picker: gr.Dropdown
    card: gr.Markdown
    model_picker: gr.Dropdown
    temperature: gr.Slider
    chatbot: gr.Chatbot
    chat_value: gr.State  # ChatInterface's chat; setting it empties the chat
    conversation_id: gr.State  # which saved chat this is; None starts a new one
    usage: gr.Markdown

    @property
    def look(self) -> list[gr.components.Component]:
        """What ``Page.panel`` sets: a persona's card, model choices, slider and chatbot look."""
        return [self.card, self.model_picker, self.temperature, self.chatbot]


Handled = dict[gr.components.Component, Any]  # what a handler sets: {component: value or update}


class Page:
    """The page's event handlers, over the one chat service all visitors share."""

    def __init__(self, service: ChatService):
        self.service = service
        self.settings, self.personas, self.catalog = service.settings, service.personas, service.catalog
        self.avatars = write_avatars(self.personas)
        self.addresses = service.guard.addresses
        self.parts: Parts  # set by build() once the components exist
        # What the page is built with (the built-in model table, before any list is fetched):
        # the load event sends the fetched list only where it differs from this.
        self.built_models = self.model_choices(self.personas.first, "en")

    # -- what the page shows for a persona ------------------------------------------------

    def model_choices(self, persona: Persona, lang: Lang) -> list[tuple[str, str]]:
        own = t("model_default", lang, model=self.catalog.pick(persona.model).id)
        return [(own, ""), *((m.id, m.id) for m in self.catalog.cached_models)]

    def temperature(self, persona: Persona, model_id: str) -> dict[str, Any]:
        """The slider shows only for models that take a temperature (not K2.5 and later, nor thinking models)."""
        model = self.catalog.pick(model_id or persona.model)
        value = persona.temperature if persona.temperature is not None else model.default_temperature
        return {"visible": not model.fixed_sampling, "value": value}

    def chatbot_props(self, persona: Persona, lang: Lang) -> dict[str, Any]:
        """The chatbot's look for ``persona``: greeting, starters, avatar (its value is untouched)."""
        return {
            "placeholder": greeting(persona, lang),
            "examples": starters(persona, lang) or None,
            "avatar_images": (None, self.avatars[persona.id]),
        }

    def panel(self, persona: Persona, lang: Lang) -> Handled:
        """Card, model picker, temperature slider and chatbot look for ``persona``."""
        parts = self.parts
        return {
            parts.card: persona_card(persona, lang),
            parts.model_picker: gr.update(choices=self.model_choices(persona, lang), value=""),
            parts.temperature: gr.update(**self.temperature(persona, "")),
            parts.chatbot: gr.update(**self.chatbot_props(persona, lang)),
        }

    # -- events -----------------------------------------------------------------------------

    def visitor(self, request: gr.Request, own_key: str, profile: gr.OAuthProfile | None) -> Visitor:
        """Who asks: their Hugging Face account if signed in (Gradio reads it from the session the
        Space's OAuth signed), else their address; their session; the key they typed, if allowed."""
        address = self.addresses.of(request)
        user = profile.username if profile is not None and self.settings.sign_in else None
        return Visitor(
            visitor_ids(address, request.session_hash, user),
            (own_key or "").strip() if self.settings.allow_visitor_keys else "",
        )

    async def respond(
        self,
        message: dict[str, Any],
        history: list[dict[str, Any]],
        persona_id: str,
        model_id: str,
        temperature: float,
        own_key: str,
        request: gr.Request,
        profile: gr.OAuthProfile | None = None,
    ) -> AsyncIterator[tuple[list[dict[str, Any]], str]]:
        """ChatInterface's ``fn``: the reply's messages as they grow, and the usage line."""
        lang = lang_of(request)
        visitor = self.visitor(request, own_key, profile)
        updates = self.service.reply(message, history or [], persona_id, model_id or None, temperature, lang, visitor)
        async for update in updates:
            yield update.messages, usage_line(update, lang)

    def switch_persona(self, persona_id: str, request: gr.Request) -> Handled:
        """A new persona starts a new, empty conversation (its greeting and starters show), saved
        apart from the one before it, as ChatInterface's New chat does."""
        panel = self.panel(self.service.persona(persona_id), lang_of(request))
        return {self.parts.chat_value: [], self.parts.conversation_id: None, **panel}

    def reopen(self, index: int, saved: list, request: gr.Request) -> Handled:
        """A saved chat comes back with its own persona, read from its replies' tags; one saved with
        a persona this Space no longer has goes on with the default one, and says so."""
        chat = saved[index] if isinstance(index, int) and 0 <= index < len(saved or []) else []
        owner, lang = conversation_persona(chat), lang_of(request)
        persona = self.service.persona(owner)
        gone = t("persona_gone", lang, persona=persona.name.get(lang)) if owner and persona.id != owner else ""
        return {self.parts.picker: persona.id, **self.panel(persona, lang), self.parts.usage: gone}

    def model_changed(self, persona_id: str, model_id: str) -> Handled:
        return {self.parts.temperature: gr.update(**self.temperature(self.service.persona(persona_id), model_id))}

    def localize(self, language: str) -> Handled:
        """The page in the visitor's language, for a browser that prefers Chinese (the page is built in
        English, with the key's model list fetched at startup); an English page never calls this:
        see ``build``."""
        lang, first, parts = pick_lang(language), self.personas.first, self.parts
        return {
            parts.setup: setup_panel(self.settings, lang),
            parts.picker: gr.update(choices=persona_choices(self.personas, lang), value=first.id),
            parts.card: persona_card(first, lang),
            parts.model_picker: gr.update(choices=self.model_choices(first, lang), value=""),
            parts.chatbot: gr.update(**self.chatbot_props(first, lang)),
        }


# The first of our languages in the browser's order of preference (as i18n.pick_lang reads an
# Accept-Language header), English when neither: "en" leaves the page's hidden box as it is.
BROWSER_LANGUAGE = """() => {
  const first = [...(navigator.languages || []), navigator.language || ""].find((l) => /^(en|zh)/i.test(l));
  return first && first.toLowerCase().startsWith("zh") ? "zh" : "en";
}"""


# One text for both languages: the button's own script compares its label with this value.
SIGN_IN, LOG_OUT = "Sign in with Hugging Face · 登录", "Log out ({}) · 退出"


def build(service: ChatService) -> gr.Blocks:
    """The whole app, ready for ``launch(**launch_options(service))``."""
    settings, personas = service.settings, service.personas
    page = Page(service)
    first = personas.first

    kept = max(2, settings.files_kept_seconds)  # uploads (and their copies) go after this long
    with gr.Blocks(title=STRINGS["title"]["en"], fill_height=True, delete_cache=(max(1, kept // 4), kept)) as demo:
        setup = gr.Markdown(setup_panel(settings, "en"), visible=not settings.has_key, elem_id="setup-panel")
        if settings.space_id:
            gr.DuplicateButton(label("duplicate"), size="sm", elem_id="duplicate")
        if settings.sign_in:  # signed-in visitors are their account, with SIGNED_IN_FACTOR times the limits
            gr.LoginButton(SIGN_IN, LOG_OUT, size="sm", elem_id="sign-in")
        with gr.Row(equal_height=True, elem_id="persona-row"):
            picker = gr.Dropdown(
                choices=persona_choices(personas, "en"),
                value=first.id,
                label=label("persona"),
                scale=2,
                min_width=200,
                elem_id="persona-picker",
            )
            card = gr.Markdown(persona_card(first, "en"), elem_id="persona-card")
            export = gr.Button(label("export"), size="sm", scale=0, min_width=120, elem_id="export")
        with gr.Accordion(label("settings"), open=False, elem_id="settings"):
            model_picker = gr.Dropdown(
                choices=page.built_models,
                value="",
                label=label("model"),
                elem_id="model-picker",
                allow_custom_value=True,  # API callers may name any id; the catalog falls back
            )
            temperature = gr.Slider(
                0.0, 1.0, step=0.05, label=label("temperature"), elem_id="temperature", **page.temperature(first, "")
            )
            # Sent with each message and used for that request only; never stored or returned.
            visitor_key = gr.Textbox(
                "",
                type="password",
                label=label("visitor_key"),
                info=label("visitor_key_info"),
                placeholder="sk-...",
                visible=settings.allow_visitor_keys,
                elem_id="visitor-key",
            )
        usage = gr.Markdown(elem_id="usage", render=False)
        # ChatInterface wires a click on a starter only when it is built with some, so it gets the
        # first starters any persona has; the click sends the starter shown, whichever persona's.
        wiring = next((starters(p, "en") for p in (first, *personas.visible) if p.examples), [])
        look_of_first = page.chatbot_props(first, "en")
        # respond(message, history, persona_id, model_id, temperature, own_key): ChatInterface passes
        # these by position, so they are named here once and checked against respond's parameters
        respond_inputs = {"persona_id": picker, "model_id": model_picker, "temperature": temperature}
        respond_inputs["own_key"] = visitor_key
        if list(inspect.signature(page.respond).parameters)[2:6] != list(respond_inputs):
            raise RuntimeError("Page.respond's parameters do not match respond_inputs (kimichat/ui.py)")
        chat = gr.ChatInterface(
            page.respond,
            multimodal=True,
            chatbot=ChatView(
                latex_delimiters=LATEX,
                buttons=["copy", "copy_all"],
                elem_id="chatbot",
                show_label=False,
                scale=1,
                height="64vh",
                editable="user",
                placeholder=look_of_first["placeholder"],
                avatar_images=look_of_first["avatar_images"],
            ),
            textbox=MessageBox(
                placeholder=label("placeholder"),
                file_types=ACCEPTED,
                file_count="multiple",
                sources=["upload"],
                submit_btn=True,
                stop_btn=True,  # a custom box has none unless asked: ChatInterface shows it while a reply runs
                elem_id="message",
            ),
            additional_inputs=list(respond_inputs.values()),
            additional_outputs=[usage],
            # a switch of persona shows the new persona's starters in their place (chatbot_props)
            examples=[[ex["text"]] for ex in wiring] or None,
            example_labels=[ex["display_text"] for ex in wiring] or None,
            editable=True,
            save_history=True,
            cache_examples=False,
            concurrency_limit=settings.chat_concurrency,
            api_name="chat",
            api_visibility="undocumented",  # callable by gradio_client as /chat, but no MCP tool (tools.py)
        )
        usage.render()
        if not look_of_first["examples"]:  # the chatbot shows the first persona's own: none
            chat.chatbot.examples = None
        page.parts = parts = Parts(
            setup,
            picker,
            card,
            model_picker,
            temperature,
            chat.chatbot,
            chat.chatbot_value,
            chat.conversation_id,
            usage,
        )
        direct: dict[str, Any] = {"api_visibility": "undocumented", "queue": False}
        # An English page load costs the server nothing beyond the page: the browser writes its
        # language here, and only a change (Chinese) asks for the page in it.
        # (A load event answered by the server for every visitor cost 9 ms of CPU a page, twice the
        # rest of a page load: Gradio rebuilds the config of every component it updates.)
        language = gr.Textbox("en", visible="hidden", elem_id="browser-language")
        demo.load(None, None, [language], js=BROWSER_LANGUAGE, api_visibility="private")
        language.change(page.localize, [language], [parts.setup, parts.picker, *parts.look], **direct)
        # .input, not .change: reopening a saved chat sets the picker without emptying the chat. Queued:
        # Gradio 6.31 fires a State's .change (chatbot_value's empties the chat) only after queued events.
        fresh_chat = [parts.chat_value, parts.conversation_id]
        picker.input(page.switch_persona, [picker], [*fresh_chat, *parts.look], api_visibility="undocumented")
        keep_saved_chats(chat, settings)
        saved = [chat.chat_history_dataset, chat.saved_conversations]
        chat.chat_history_dataset.click(page.reopen, saved, [picker, *parts.look, usage], **direct)
        model_picker.change(page.model_changed, [picker, model_picker], [temperature], **direct)
        export.click(None, [chat.chatbot, picker], None, js=EXPORT_JS)
        if settings.mcp_server:
            Tools(service).register()
    # Queue positions every 2 s, not after every finished reply to every waiting visitor: with 400
    # waiting, "auto" cost 48 ms of CPU per reply against 27-31 ms (benchmarks/load.py --users 500).
    demo.queue(
        api_open=False,  # as on a Space (Gradio's default elsewhere is open): no call skips the queue
        max_size=settings.queue_max_size,
        default_concurrency_limit=settings.chat_concurrency,
        status_update_rate=2.0,
    )
    return demo


SAVED_CHATS_KEY = "kimichat-saved-chats"


def keep_saved_chats(chat: gr.ChatInterface, settings: Settings) -> None:
    """Saved chats that survive restarts: ChatInterface keeps them in a ``gr.BrowserState`` whose
    secret is random per launch and whose storage key holds a component id (which moves when the
    layout does), so each restart showed an empty list and the next save overwrote the old one.
    A fixed secret and key (Gradio's own advice, gradio#10559) keep them. ChatInterface has no
    parameter for them, so its ``saved_conversations`` gets the BrowserState's documented
    ``secret`` and ``storage_key``; if a Gradio upgrade moves either, startup stops here.

    The secret keeps apps on one origin apart; it hides nothing from the visitor (it is in the
    page), so it is derived from the Space's id unless SAVED_CHATS_SECRET sets one."""
    secret = settings.saved_chats_secret or hashlib.sha256(f"kimichat:{settings.space_id}".encode()).hexdigest()[:32]
    saved = getattr(chat, "saved_conversations", None)
    if isinstance(saved, gr.BrowserState):
        saved.secret, saved.storage_key = secret, SAVED_CHATS_KEY
    props = saved.get_config() if isinstance(saved, gr.BrowserState) else {}
    if props.get("secret") != secret or props.get("storage_key") != SAVED_CHATS_KEY:
        raise RuntimeError(
            "this Gradio's ChatInterface no longer keeps saved chats in saved_conversations (a gr.BrowserState "
            "with secret and storage_key): saved chats would vanish at every restart; see kimichat/ui.py"
        )


def middleware(settings: Settings, gate: EdgeGate, reader: AddressReader) -> list[Middleware]:
    """The checks before Gradio reads a request (middleware.py), outermost first."""
    limit, direct_limit = megabytes(settings.max_body_mb), megabytes(settings.max_direct_body_mb)
    return [
        Middleware(ClosedRoutes),
        Middleware(BodyLimit, limit=limit, direct_limit=direct_limit),
        Middleware(DirectCallLimit, gate=gate, reader=reader),
        Middleware(UploadLimit, gate=gate, reader=reader, max_files=settings.max_files_per_message),
        Middleware(NoFileUrls),
        Middleware(PageCache),  # keeps the page as PagePolicy sends it, the policy included
        Middleware(PagePolicy),
    ]


def launch_options(service: ChatService) -> dict[str, Any]:
    """Keyword arguments for ``demo.launch``: Gradio 6 takes i18n, css and theme there.

    ``max_threads`` also caps how many queued events Gradio runs at once (40 by default,
    whatever the events' concurrency limits say), so it must leave room for every chat
    plus the short steps around them.
    """
    settings = service.settings
    return {
        "i18n": LABELS,
        "ssr_mode": False,
        "css": CSS,
        "max_threads": 2 * settings.chat_concurrency,
        # Gradio's run history can record public calls with their inputs (for /chat, a visitor's
        # own key) in the browser or a Hub bucket; the chat needs none of it.
        "run_history": False,
        "max_file_size": f"{settings.max_file_mb:g}mb",  # Gradio refuses a larger upload before storing it
        # Each session's state stays in memory until the session has been gone an hour; a made-up
        # session name makes a new one. At most this many, each bounded by MAX_DIRECT_BODY_MB.
        "state_session_capacity": settings.state_sessions,
        "mcp_server": settings.mcp_server,  # the tools of tools.py at /gradio_api/mcp/
        "app_kwargs": {"middleware": middleware(settings, service.guard.edge, service.guard.addresses)},
    }
