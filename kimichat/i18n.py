"""The app's own words in English and Chinese, and which of the two a visitor reads.

Gradio translates its own widgets from the browser's language; the strings here are
ours: labels (handed to ``gr.I18n``) and the sentences the server writes into the chat
(picked from the request's ``Accept-Language``).
"""

from __future__ import annotations

from typing import Literal

Lang = Literal["en", "zh"]
LANGS: tuple[Lang, ...] = ("en", "zh")

STRINGS: dict[str, dict[Lang, str]] = {
    "title": {"en": "Kimi Persona Chat", "zh": "Kimi 角色对话"},
    "persona": {"en": "Persona", "zh": "角色"},
    "model": {"en": "Model", "zh": "模型"},
    "model_default": {"en": "Persona default ({model})", "zh": "角色默认（{model}）"},
    "temperature": {"en": "Temperature", "zh": "温度"},
    "settings": {"en": "Settings", "zh": "设置"},
    "placeholder": {"en": "Message the persona… (Enter to send)", "zh": "给角色发消息…（回车发送）"},
    "new_chat": {"en": "➕ New chat", "zh": "➕ 新对话"},
    "export": {"en": "⬇ Export (.md)", "zh": "⬇ 导出 (.md)"},
    "thinking": {"en": "Thinking", "zh": "思考过程"},
    "tokens": {"en": "{n} tokens", "zh": "{n} 个 token"},
    "usage": {
        "en": "Last reply: {reply} tokens ({prompt} in, {completion} out) · model {model}",
        "zh": "上一条回复：{reply} 个 token（输入 {prompt}，输出 {completion}）· 模型 {model}",
    },
    "no_key": {
        "en": "This Space has no Kimi API key yet. The owner can add one as the secret "
        "`MOONSHOT_API_KEY`{where} (get a key at platform.moonshot.cn, or platform.moonshot.ai "
        "abroad, then restart the Space).",
        "zh": "这个 Space 还没有配置 Kimi API 密钥。所有者可以添加名为 `MOONSHOT_API_KEY` 的 "
        "secret{where}（在 platform.moonshot.cn 或海外的 platform.moonshot.ai 获取密钥，然后重启 Space）。",
    },
    "no_key_where": {"en": " in the Space settings: {url}", "zh": "，位置在 Space 设置页：{url}"},
    "key_rejected": {
        "en": "Kimi rejected the Space's API key. The owner should check the "
        "`MOONSHOT_API_KEY` secret, and that `MOONSHOT_BASE_URL` matches the platform "
        "that issued the key (.cn or .ai){where}.",
        "zh": "Kimi 拒绝了这个 Space 的 API 密钥。请所有者检查 `MOONSHOT_API_KEY`，"
        "并确认 `MOONSHOT_BASE_URL` 与签发密钥的平台（.cn 或 .ai）一致{where}。",
    },
    "upstream_failed": {
        "en": "Kimi could not answer this time ({reason}). Please try again.",
        "zh": "Kimi 这次没能回答（{reason}），请重试。",
    },
    "cut_off": {
        "en": "The reply was cut off: the connection to Kimi broke. What arrived is kept above.",
        "zh": "回复被中断：与 Kimi 的连接断开了。已收到的内容保留在上方。",
    },
    "length": {
        "en": "The reply hit the length limit and stops here.",
        "zh": "回复达到长度上限，到此为止。",
    },
    "persona_fallback": {
        "en": "Model {wanted} is not available; using {used}.",
        "zh": "模型 {wanted} 不可用，改用 {used}。",
    },
    "note": {"en": "Note", "zh": "提示"},
    "empty_message": {"en": "Type a message first.", "zh": "请先输入内容。"},
}


def pick_lang(accept_language: str | None) -> Lang:
    """The first of our languages in an ``Accept-Language`` header, English by default.

    Entries are taken in the header's order of preference (``q`` weights), so
    ``en-US,zh;q=0.8`` reads English and ``zh-CN,en;q=0.5`` reads Chinese.
    """
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        ranked.append((-q, position, tag.strip().lower()))
    for _, _, tag in sorted(ranked):
        primary = tag.split("-")[0]
        if primary in LANGS:
            return primary  # type: ignore[return-value]
    return "en"


def t(key: str, lang: Lang, **values: object) -> str:
    """The string ``key`` in ``lang`` with ``values`` filled in."""
    return STRINGS[key][lang].format(**values)
