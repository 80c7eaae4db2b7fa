"""The Gradio app: persona picker, settings, the chat box (chat_box.py) and their events.

Everything per visitor lives in the visitor's page (the chat, the picker), their browser's
storage (saved conversations) or, for API callers, Gradio's per-session values; module
state holds only what all visitors may share: settings, the persona file, one Kimi
client, the model list.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from html import escape
from pathlib import Path
from typing import Any

import gradio as gr

from . import chat_box
from .attachments import ACCEPTED, Attachments
from .chat import ChatService, Update, Visitor
from .conversation import conversation_persona, persona_tag
from .guard import Guard, visitor_ids
from .i18n import LANGS, STRINGS, Lang, pick_lang, t
from .kimi import make_client
from .models import ModelCatalog
from .personas import Persona, PersonaFile
from .settings import Settings

LATEX = [
    {"left": "$$", "right": "$$", "display": True},
    {"left": "\\[", "right": "\\]", "display": True},
    {"left": "\\(", "right": "\\)", "display": False},
]  # no single "$": prices such as "$5 and $10" must stay text

QUEUE_POLL_SECONDS = 0.005
CSS = (Path(__file__).parent / "static" / "app.css").read_text(encoding="utf-8")
EXPORT_JS = (Path(__file__).parent / "static" / "export.js").read_text(encoding="utf-8")


def _i18n() -> gr.I18n:
    """Our labels for Gradio's front end, which picks by the browser's language."""
    tables = {lang: {key: words[lang] for key, words in STRINGS.items()} for lang in LANGS}
    return gr.I18n(en=tables["en"], zh=tables["zh"], **{"zh-CN": tables["zh"], "zh-TW": tables["zh"]})


LABELS = _i18n()  # LABELS("persona") is a label the browser shows in its own language


def lang_of(request: gr.Request | None) -> Lang:
    return pick_lang(request.headers.get("accept-language") if request else None)


def greeting(persona: Persona, lang: Lang) -> list[dict[str, Any]]:
    """A new chat: the persona's greeting, its examples as buttons under it."""
    text = persona.greeting.get(lang) if persona.greeting else f"{persona.avatar} {persona.name.get(lang)}"
    options = [{"value": ex.text.get(lang), "label": (ex.label or ex.text).get(lang)} for ex in persona.examples]
    return [{"role": "assistant", "content": text, "metadata": persona_tag(persona.id), "options": options}]


def setup_panel(settings: Settings, lang: Lang) -> str:
    """For an owner whose Space (often a fresh duplicate) has no key yet: how to add one."""
    url = settings.settings_url
    where = f"[{t('settings_page', lang)}]({url})" if url else t("settings_page", lang)
    return t("setup", lang, settings=where)


def persona_card(persona: Persona, lang: Lang) -> str:
    return f"### {persona.avatar} {persona.name.get(lang)}\n{persona.description.get(lang)}"


def persona_choices(personas: PersonaFile, lang: Lang) -> list[tuple[str, str]]:
    return [(f"{p.avatar} {p.name.get(lang)}", p.id) for p in personas.visible]


def usage_line(update: Update, lang: Lang) -> str:
    """Under the chat: this reply's tokens, and the conversation's so far."""
    usage = update.usage
    if usage is None:
        return ""
    return t(
        "usage",
        lang,
        reply=usage.total_tokens,
        prompt=usage.prompt_tokens,
        completion=usage.completion_tokens,
        total=update.conversation_tokens,
        model=update.model,
    )


def write_avatars(personas: PersonaFile) -> dict[str, str]:
    """One small SVG per persona showing its emoji, for the chat's bot avatar."""
    folder = Path(tempfile.mkdtemp(prefix="kimichat-avatars-"))
    paths = {}
    for persona in personas.personas:
        path = folder / f"{persona.id}.svg"
        path.write_text(
            '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64"><text x="32" y="34" font-size="46" '
            f'text-anchor="middle" dominant-baseline="middle">{escape(persona.avatar)}</text></svg>',
            encoding="utf-8",
        )
        paths[persona.id] = str(path)
    gr.set_static_paths([folder])
    return paths


class PersonaViews:
    """What the page shows for a persona, in the visitor's language."""

    def __init__(self, settings: Settings, personas: PersonaFile, catalog: ModelCatalog):
        self.settings, self.catalog = settings, catalog
        self.avatars = write_avatars(personas)

    def model_choices(self, persona: Persona, lang: Lang) -> list[tuple[str, str]]:
        own = t("model_default", lang, model=persona.model or self.settings.default_model)
        return [(own, ""), *((m.id, m.id) for m in self.catalog.cached_models)]

    def temperature(self, persona: Persona, model_id: str) -> dict[str, Any]:
        """The slider shows only for models that take a temperature (not K2.5 and later)."""
        model = self.catalog.cached(model_id or persona.model or self.settings.default_model)
        value = persona.temperature if persona.temperature is not None else model.default_temperature
        return {"visible": not model.fixed_sampling, "value": value}

    def chatbot(self, persona: Persona, value: list | None = None) -> dict[str, Any]:
        """A chatbot update: this persona's avatar, and ``value`` if given."""
        update: dict[str, Any] = {"avatar_images": (None, self.avatars[persona.id])}
        return gr.update(**update) if value is None else gr.update(value=value, **update)

    def panel(self, persona: Persona, lang: Lang) -> tuple:
        """Card, model picker and temperature slider for ``persona``."""
        return (
            persona_card(persona, lang),
            gr.update(choices=self.model_choices(persona, lang), value=""),
            gr.update(**self.temperature(persona, "")),
        )

    def new_chat(self, persona: Persona, lang: Lang) -> tuple:
        """A fresh conversation: the greeting in the chat, no saved slot yet."""
        return (*self.panel(persona, lang), self.chatbot(persona, greeting(persona, lang)), None)


def build(settings: Settings, personas: PersonaFile) -> gr.Blocks:
    """The whole app, ready for ``launch(**launch_options(settings))``."""
    client = make_client(settings) if settings.has_key else None
    catalog = ModelCatalog(client, settings.default_model, settings.models_cache_seconds, settings.models_timeout)
    service = ChatService(settings, personas, catalog, client, Guard(settings), Attachments(settings.max_file_mb))
    views = PersonaViews(settings, personas, catalog)
    first = personas.first

    with gr.Blocks(title=STRINGS["title"]["en"], fill_height=True) as demo:
        setup = gr.Markdown(setup_panel(settings, "en"), visible=not settings.has_key, elem_id="setup-panel")
        if settings.space_id:
            gr.DuplicateButton(LABELS("duplicate"), size="sm", elem_id="duplicate")
        with gr.Row(equal_height=True, elem_id="persona-row"):
            picker = gr.Dropdown(
                choices=persona_choices(personas, "en"),
                value=first.id,
                label=LABELS("persona"),
                scale=2,
                min_width=200,
                elem_id="persona-picker",
            )
            card = gr.Markdown(persona_card(first, "en"), elem_id="persona-card")
            with gr.Column(scale=0, min_width=120, elem_id="chat-actions"):
                new_chat = gr.Button(LABELS("new_chat"), size="sm", variant="primary", elem_id="new-chat")
                export = gr.Button(LABELS("export"), size="sm", elem_id="export")
        with gr.Accordion(LABELS("settings"), open=False, elem_id="settings"):
            model_picker = gr.Dropdown(
                choices=views.model_choices(first, "en"),
                value="",
                label=LABELS("model"),
                elem_id="model-picker",
                allow_custom_value=True,  # API callers may name any id; the catalog falls back
            )
            temperature = gr.Slider(
                0.0, 1.0, step=0.05, label=LABELS("temperature"), elem_id="temperature", **views.temperature(first, "")
            )
            # Sent with each message and used for that request only; never stored or returned.
            visitor_key = gr.Textbox(
                "",
                type="password",
                label=LABELS("visitor_key"),
                info=LABELS("visitor_key_info"),
                placeholder="sk-...",
                visible=settings.allow_visitor_keys,
                elem_id="visitor-key",
            )
        box = chat_box.render(greeting(first, "en"), views.avatars[first.id], LABELS("placeholder"), ACCEPTED, LATEX)
        options = [picker, model_picker, temperature, visitor_key]

        def visitor_of(request: gr.Request, own_key: str) -> Visitor:
            host = request.client.host if request.client else None
            return Visitor(
                visitor_ids(request.headers, host, request.session_hash, settings.behind_proxy),
                (own_key or "").strip() if settings.allow_visitor_keys else "",
            )

        def ask(message, history, persona_id, model_id, temp, own_key, request: gr.Request, stopped=lambda: False):
            """The reply to ``message`` after ``history``, as (update, usage line)s."""
            lang = lang_of(request)
            updates = service.reply(
                message, history or [], persona_id, model_id or None, temp, lang, visitor_of(request, own_key), stopped
            )
            return ((update, usage_line(update, lang)) async for update in updates)

        async def respond(message, chat, turn, persona_id, model_id, temp, own_key, request: gr.Request):
            """The page's reply: the whole chat as it grows, and the usage line. The page already
            shows the message at the end of ``chat``; the history is what came before it."""
            session = request.session_hash or ""
            stopped = box.stops.watch(session, turn)
            chat = chat or []
            history = chat[: len(chat) - len(chat_box.user_messages(message))]
            replies = ask(message, history, persona_id, model_id, temp, own_key, request, stopped=stopped)
            shown, replied = chat_box.for_page(chat), False
            try:
                async for update, line in replies:
                    yield [*shown, *chat_box.for_page(update.messages)], line
                    replied = True
                if not replied:  # stopped before it began: the chat as it is
                    yield shown, ""
            finally:
                box.stops.forget(session, turn)

        async def api_reply(message, history, persona_id, model_id, temp, own_key, request: gr.Request):
            """/chat for API callers: this reply's messages; the conversation stays in the session."""
            asked = [*(history or []), *chat_box.user_messages(message)]
            async for update, line in ask(message, history, persona_id, model_id, temp, own_key, request):
                yield update.messages, [*asked, *update.messages], line

        chat_box.wire(box, respond, options, settings.chat_concurrency)
        api_history, api_response = gr.State([]), gr.JSON(visible=False)
        gr.Button(visible=False).click(
            api_reply,
            [box.textbox, api_history, *options],
            [api_response, api_history, box.usage],
            api_name="chat",
            concurrency_limit=settings.chat_concurrency,
            concurrency_id="chat",
            postprocess=False,
        )
        fresh = [card, model_picker, temperature, box.chatbot, box.slot]

        async def on_load(persona_id: str, request: gr.Request):
            """The page in the visitor's language. Where the page as built already shows the
            right thing, the value goes back, not a prop update: each prop update, even
            ``gr.skip()``, rebuilds the component and its config for the rest of the session
            (page load 16 -> 10 ms of server CPU, and the first message 1-2 ms less)."""
            await catalog.models()  # the first page load fetches the list; later ones reuse it
            lang, persona = lang_of(request), service.persona(persona_id)
            if persona is first:  # a fresh page: only the language and the fetched model list may differ
                models = views.model_choices(first, lang)
                return (
                    setup_panel(settings, lang),
                    first.id if lang == "en" else gr.update(choices=persona_choices(personas, lang)),
                    persona_card(first, lang),
                    "" if model_picker.choices == models else gr.update(choices=models, value=""),
                    views.temperature(first, "")["value"],
                    greeting(first, lang),
                    None,
                )
            return (
                setup_panel(settings, lang),
                gr.update(choices=persona_choices(personas, lang)),
                *views.new_chat(persona, lang),
            )

        def on_restore(index: int, saved: list, request: gr.Request):
            """A saved conversation comes back with its own persona (read from its replies)."""
            lang = lang_of(request)
            found = 0 <= index < len(saved)
            persona = service.persona(conversation_persona(saved[index]) if found else None)
            chat = views.chatbot(persona, saved[index] if found else None)
            return persona.id, *views.panel(persona, lang), chat, index if found else None

        def start_new(persona_id: str, request: gr.Request):
            return views.new_chat(service.persona(persona_id), lang_of(request))

        quiet = {"api_visibility": "undocumented", "queue": False}
        demo.load(on_load, [picker], [setup, picker, *fresh], **quiet)
        demo.load(None, [box.saved], [box.history], js=chat_box.TITLES_JS)  # listed in the browser
        # .input, not .change: restoring a conversation sets the picker without resetting the chat
        picker.input(start_new, [picker], fresh, **quiet)
        new_chat.click(start_new, [picker], fresh, **quiet)
        box.history.click(
            on_restore,
            [box.history, box.saved],
            [picker, card, model_picker, temperature, box.chatbot, box.slot],
            **quiet,
        )
        model_picker.change(
            lambda p, m: gr.update(**views.temperature(service.persona(p), m)),
            [picker, model_picker],
            [temperature],
            **quiet,
        )
        export.click(None, [box.chatbot, picker], None, js=EXPORT_JS)
    # Queue positions every 2 s, not after every finished reply to every waiting visitor: with 400
    # waiting, "auto" cost 48 ms of CPU per reply against 27-31 ms (benchmarks/load.py --users 500).
    demo.queue(
        max_size=settings.queue_max_size,
        default_concurrency_limit=settings.chat_concurrency,
        status_update_rate=2.0,
    )
    # Gradio's queue looks for work every 1 ms and for progress bars every 10 ms: 4% of a core
    # with nobody on the page, and about 1 ms of CPU per reply under load. Every 5 ms still
    # starts a reply well inside a frame; the app shows no progress bars.
    demo._queue.sleep_when_free = QUEUE_POLL_SECONDS
    demo._queue.progress_update_sleep_when_free = 0.5
    return demo


def launch_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``demo.launch``: Gradio 6 takes i18n, css and theme there.

    ``max_threads`` also caps how many queued events Gradio runs at once (40 by default,
    whatever the events' concurrency limits say), so it must leave room for every chat
    plus the short steps around them.
    """
    return {
        "i18n": LABELS,
        "ssr_mode": False,
        "css": CSS,
        "max_threads": 2 * settings.chat_concurrency,
        # Gradio's run history can record public calls with their inputs (for /chat, a visitor's
        # own key) in the browser or a Hub bucket; the chat needs none of it.
        "run_history": False,
        "app_kwargs": {"lifespan": no_login_hops},
    }


@asynccontextmanager
async def no_login_hops(app: Any) -> AsyncIterator[None]:
    """Spare every queue request two worker-thread hops (Gradio runs this before it serves).

    Gradio guards its queue routes with ``login_check``, a plain function that FastAPI runs
    in its thread pool, with ``get_current_user`` under it, on every join and every event
    stream: four hops per message, each a GIL hand-over on a busy core. With no login set,
    Gradio's check lets everyone in, so an async check that does the same stands in
    (FastAPI's ``dependency_overrides``). An app with a login keeps Gradio's.
    """
    if app.auth is None and app.auth_dependency is None:
        for check in login_checks(app):
            app.dependency_overrides[check] = _everyone_in
    yield


def login_checks(app: Any) -> set[Any]:
    """Gradio's ``login_check`` dependencies on the app's routes."""
    return {
        depends.dependency
        for route in app.routes
        for depends in getattr(route, "dependencies", ())
        if getattr(depends.dependency, "__name__", "") == "login_check"
    }


async def _everyone_in() -> None:
    """Gradio's ``login_check`` when no login is set: nothing to check."""
