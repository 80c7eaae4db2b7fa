"""The Gradio app: persona picker, chat, settings, and the events that tie them.

Everything per visitor lives in Gradio's own per-session values (the chat history,
the picker); module state holds only what all visitors may share: the settings, the
persona file, one Kimi client and the model list.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from .chat import ChatService, Update
from .conversation import persona_tag
from .i18n import LANGS, STRINGS, Lang, pick_lang, t
from .kimi import make_client
from .models import ModelCatalog, ModelInfo
from .personas import Persona, PersonaFile
from .settings import Settings

LATEX = [
    {"left": "$$", "right": "$$", "display": True},
    {"left": "\\[", "right": "\\]", "display": True},
    {"left": "\\(", "right": "\\)", "display": False},
]  # no single "$": prices such as "$5 and $10" must stay text


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


def persona_card(persona: Persona, lang: Lang) -> str:
    return f"### {persona.avatar} {persona.name.get(lang)}\n{persona.description.get(lang)}"


def persona_choices(personas: PersonaFile, lang: Lang) -> list[tuple[str, str]]:
    return [(f"{p.avatar} {p.name.get(lang)}", p.id) for p in personas.visible]


def model_choices(models: tuple[ModelInfo, ...], persona: Persona, default: str, lang: Lang) -> list[tuple[str, str]]:
    own = t("model_default", lang, model=persona.model or default)
    return [(own, "")] + [(m.id, m.id) for m in models]


def usage_line(update: Update, lang: Lang) -> str:
    usage = update.usage
    if usage is None:
        return ""
    return t(
        "usage",
        lang,
        reply=usage.total_tokens,
        prompt=usage.prompt_tokens,
        completion=usage.completion_tokens,
        model=update.model,
    )


def build(settings: Settings, personas: PersonaFile) -> gr.Blocks:
    """The whole app, ready for ``launch(**launch_options())``."""
    client = make_client(settings) if settings.has_key else None
    catalog = ModelCatalog(client, settings.default_model, settings.models_cache_seconds, settings.models_timeout)
    service = ChatService(settings, personas, catalog, client)
    first = personas.first

    def temperature_update(persona: Persona, model_id: str) -> dict[str, Any]:
        """The slider shows only for models that take a temperature (not K2.5 and later)."""
        model = catalog.cached(model_id or persona.model or settings.default_model)
        value = persona.temperature if persona.temperature is not None else model.default_temperature
        return {"visible": not model.fixed_sampling, "value": value}

    with gr.Blocks(title=STRINGS["title"]["en"], fill_height=True) as demo:
        with gr.Row(equal_height=True, elem_id="persona-row"):
            persona_picker = gr.Dropdown(
                choices=persona_choices(personas, "en"),
                value=first.id,
                label=LABELS("persona"),
                scale=2,
                min_width=220,
                elem_id="persona-picker",
            )
            card = gr.Markdown(persona_card(first, "en"), elem_id="persona-card")
        with gr.Accordion(LABELS("settings"), open=False, elem_id="settings"):
            model_picker = gr.Dropdown(
                choices=model_choices(catalog.cached_models, first, settings.default_model, "en"),
                value="",
                label=LABELS("model"),
                elem_id="model-picker",
                allow_custom_value=True,  # API callers may name any id; the catalog falls back
            )
            temperature = gr.Slider(
                0.0, 1.0, step=0.05, label=LABELS("temperature"), elem_id="temperature", **temperature_update(first, "")
            )
        usage = gr.Markdown(render=False, elem_id="usage")

        async def respond(
            message: str,
            history: list[dict[str, Any]],
            persona_id: str,
            model_id: str,
            temp: float,
            request: gr.Request,
        ):
            lang = lang_of(request)
            async for update in service.reply(message, history, persona_id, model_id or None, temp, lang):
                yield update.messages, (usage_line(update, lang) if update.usage else gr.skip())

        chat = gr.ChatInterface(
            respond,
            chatbot=gr.Chatbot(
                value=greeting(first, "en"),
                latex_delimiters=LATEX,
                buttons=["copy", "copy_all"],
                elem_id="chatbot",
                scale=1,
                height="70vh",
                feedback_options=None,
            ),
            additional_inputs=[persona_picker, model_picker, temperature],
            additional_outputs=[usage],
            editable=True,
            api_name="chat",
            cache_examples=False,
            concurrency_limit=settings.chat_concurrency,
            fill_height=True,
        )
        usage.render()

        async def on_load(persona_id: str, request: gr.Request):
            lang = lang_of(request)
            persona = service.persona(persona_id)
            models = await catalog.models()
            return (
                gr.update(choices=persona_choices(personas, lang)),
                persona_card(persona, lang),
                gr.update(choices=model_choices(models, persona, settings.default_model, lang)),
                greeting(persona, lang),
            )

        def on_persona(persona_id: str, model_id: str, request: gr.Request):
            lang = lang_of(request)
            persona = service.persona(persona_id)
            models = catalog.cached_models
            return (
                persona_card(persona, lang),
                gr.update(choices=model_choices(models, persona, settings.default_model, lang), value=""),
                gr.update(**temperature_update(persona, "")),
                greeting(persona, lang),
            )

        demo.load(
            on_load,
            [persona_picker],
            [persona_picker, card, model_picker, chat.chatbot_value],
            api_visibility="undocumented",
            queue=False,
        )
        persona_picker.change(
            on_persona,
            [persona_picker, model_picker],
            [card, model_picker, temperature, chat.chatbot_value],
            api_visibility="undocumented",
            queue=False,
        )
        model_picker.change(
            lambda p, m: gr.update(**temperature_update(service.persona(p), m)),
            [persona_picker, model_picker],
            [temperature],
            api_visibility="undocumented",
            queue=False,
        )
    demo.queue(max_size=settings.queue_max_size, default_concurrency_limit=settings.chat_concurrency)
    return demo


def launch_options() -> dict[str, Any]:
    """Keyword arguments for ``demo.launch``: Gradio 6 takes i18n, css and theme there."""
    return {"i18n": LABELS, "ssr_mode": False}
