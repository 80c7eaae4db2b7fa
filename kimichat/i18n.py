"""The app's own words in English and Chinese, and which of the two a visitor reads.

Gradio translates its own widgets from the browser's language; the strings here are
ours: labels (handed to ``gr.I18n``) and the sentences the server writes into the chat
(picked from the request's ``Accept-Language``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
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
    "duplicate": {"en": "Duplicate this Space to host your own", "zh": "复制此 Space，自己部署一份"},
    "placeholder": {"en": "Message the persona… (Enter to send)", "zh": "给角色发消息…（回车发送）"},
    "export": {"en": "⬇ Export (.md)", "zh": "⬇ 导出 (.md)"},
    "thinking": {"en": "Thinking", "zh": "思考过程"},
    "usage": {
        "en": "Last reply: {reply:,} tokens ({prompt:,} in, {completion:,} out) · "
        "this conversation: {total:,} · model {model}",
        "zh": "上一条回复：{reply:,} 个 token（输入 {prompt:,}，输出 {completion:,}）· "
        "本对话共 {total:,} · 模型 {model}",
    },
    "usage_cached": {
        "en": "Last reply: {reply:,} tokens ({prompt:,} in, {cached:,} of them cached; {completion:,} out) · "
        "this conversation: {total:,} · model {model}",
        "zh": "上一条回复：{reply:,} 个 token（输入 {prompt:,}，其中缓存命中 {cached:,}；输出 {completion:,}）· "
        "本对话共 {total:,} · 模型 {model}",
    },
    "no_key": {
        "en": "This Space has no Kimi API key yet. The owner can add one as the secret "
        "`MOONSHOT_API_KEY`{where} (get a key at platform.moonshot.cn, or platform.moonshot.ai "
        "abroad, then restart the Space).",
        "zh": "这个 Space 还没有配置 Kimi API 密钥。所有者可以添加名为 `MOONSHOT_API_KEY` 的 "
        "secret{where}（在 platform.moonshot.cn 或海外的 platform.moonshot.ai 获取密钥，然后重启 Space）。",
    },
    "no_key_where": {"en": " in the Space settings: {url}", "zh": "，位置在 Space 设置页：{url}"},
    "auth": {
        "en": "Kimi rejected the Space's API key. The owner should check the "
        "`MOONSHOT_API_KEY` secret, and that `MOONSHOT_BASE_URL` matches the platform "
        "that issued the key (.cn or .ai){where}.",
        "zh": "Kimi 拒绝了这个 Space 的 API 密钥。请所有者检查 `MOONSHOT_API_KEY`，"
        "并确认 `MOONSHOT_BASE_URL` 与签发密钥的平台（.cn 或 .ai）一致{where}。",
    },
    "no_balance": {
        "en": "Kimi refused: the Space's Kimi account is out of balance or quota. The owner "
        "can top it up at the Moonshot platform{where}.",
        "zh": "Kimi 拒绝了请求：这个 Space 的 Kimi 账户余额或额度不足。请所有者在 Moonshot 开放平台充值{where}。",
    },
    "busy": {
        "en": "Kimi is busy right now. Please try again in {seconds} s.",
        "zh": "Kimi 现在很忙，请 {seconds} 秒后再试。",
    },
    "retrying": {"en": "Kimi is busy; trying again…", "zh": "Kimi 正忙，正在重试…"},
    "waiting": {
        "en": "Many people are chatting right now; your reply starts as soon as a slot frees up…",
        "zh": "现在聊天的人很多，空出位置后马上开始回复…",
    },
    "content_filter": {
        "en": "Kimi declined to answer this: it was flagged as high-risk content.",
        "zh": "Kimi 拒绝回答：内容被判定为高风险。",
    },
    "context_too_long": {
        "en": "This conversation is too long for the model, even after dropping older turns. Start a new chat.",
        "zh": "即使删去较早的对话，内容仍超出模型的上下文长度。请开始新对话。",
    },
    "model_not_found": {
        "en": "That model is not available to this Space's key. Pick another one in Settings.",
        "zh": "这个 Space 的密钥无法使用该模型，请在设置里换一个。",
    },
    "timeout": {
        "en": "Kimi took too long to answer. Please try again.",
        "zh": "Kimi 响应超时，请重试。",
    },
    "stream_broken": {
        "en": "Kimi's reply could not be read. Please try again.",
        "zh": "无法读取 Kimi 的回复，请重试。",
    },
    "filtered": {
        "en": "Kimi stopped here: the rest was filtered as high-risk content.",
        "zh": "Kimi 在此停止：后续内容被判定为高风险而过滤。",
    },
    "too_long": {
        "en": "That message is {length} characters; the limit here is {limit}. Please shorten it.",
        "zh": "这条消息有 {length} 个字符，上限是 {limit}，请缩短后再发。",
    },
    "too_many_turns": {
        "en": "This conversation reached {limit} messages. Start a new chat to continue.",
        "zh": "本对话已达 {limit} 条消息上限，请开始新对话继续。",
    },
    "rate_limited": {
        "en": "You are sending messages faster than this Space allows. Please wait {seconds} s.",
        "zh": "发送太频繁了，请 {seconds} 秒后再试。",
    },
    "visitor_key": {"en": "Your own Moonshot API key (optional)", "zh": "你自己的 Moonshot API 密钥（可选）"},
    "visitor_key_info": {
        "en": "Used for your own messages only and never stored. It must come from the same "
        "Moonshot platform (.cn or .ai) as this Space.",
        "zh": "仅用于你自己的消息，不会被保存。需来自与本 Space 相同的 Moonshot 平台（.cn 或 .ai）。",
    },
    "setup": {
        "en": "### 🔑 One step left: add your Kimi API key\n"
        "This Space has no `MOONSHOT_API_KEY` secret yet, so it cannot call Kimi.\n\n"
        "1. Get a key: **platform.moonshot.cn** (China) or **platform.moonshot.ai** (international).\n"
        "2. Open {settings} → *Variables and secrets* → *New secret*; name it `MOONSHOT_API_KEY` and paste the key.\n"
        "3. Keys from platform.moonshot.ai also need the variable `MOONSHOT_BASE_URL` = `https://api.moonshot.ai/v1` "
        "(the default, `https://api.moonshot.cn/v1`, is for platform.moonshot.cn keys): a key works only on "
        "the platform that issued it.\n"
        "4. Restart the Space.\n\n"
        "💡 This Space is public: every visitor spends your balance. Set a spending limit on the key in the "
        "Moonshot console. Visitors can still chat with their own key under Settings.",
        "zh": "### 🔑 还差一步：添加 Kimi API 密钥\n"
        "这个 Space 还没有 `MOONSHOT_API_KEY` secret，暂时无法调用 Kimi。\n\n"
        "1. 获取密钥：**platform.moonshot.cn**（中国大陆）或 **platform.moonshot.ai**（海外）。\n"
        "2. 打开 {settings} → *Variables and secrets* → *New secret*，名称填 `MOONSHOT_API_KEY`，值填密钥。\n"
        "3. 来自 platform.moonshot.ai 的密钥还需设置变量 `MOONSHOT_BASE_URL` = `https://api.moonshot.ai/v1`"
        "（默认的 `https://api.moonshot.cn/v1` 对应 platform.moonshot.cn 的密钥）：密钥只能在签发它的平台使用。\n"
        "4. 重启 Space。\n\n"
        "💡 这是公开的 Space：每位访客都在消耗你的余额。请在 Moonshot 控制台为密钥设置消费上限。"
        "访客仍可在“设置”里填写自己的密钥来聊天。",
    },
    "settings_page": {"en": "the Space settings", "zh": "Space 设置页"},
    "file_type": {
        "en": "{name}: this kind of file cannot be read here. Send one of: {types}",
        "zh": "{name}：不支持这种文件。可以发送：{types}",
    },
    "file_size": {
        "en": "{name} is larger than {limit} MB, the limit here.",
        "zh": "{name} 超过了 {limit} MB 的上限。",
    },
    "file_mismatch": {
        "en": "{name} is not a {suffix} file inside: its content does not match its name.",
        "zh": "{name} 的内容与文件名不符：它并不是 {suffix} 文件。",
    },
    "too_many_images": {
        "en": "That is more images than one message can carry here (at most {count}, {mb} MB in all).",
        "zh": "这条消息的图片超出了上限（最多 {count} 张，共 {mb} MB）。",
    },
    "file_empty": {"en": "{name} is empty: there is nothing to read.", "zh": "{name} 是空文件，没有可读的内容。"},
    "file_unreadable": {
        "en": "{name} could not be read: Kimi found no text in it. Try another format (PDF, Word, plain text).",
        "zh": "{name} 无法读取：Kimi 没能从中提取文字。请换一种格式（PDF、Word、纯文本）再试。",
    },
    "no_documents": {
        "en": "This persona does not read documents. Pick one that does (Lab Cat or Kimi) and send the file again.",
        "zh": "这个角色不读文档。请换一个能读文档的角色（实验室老猫或 Kimi）再发送。",
    },
    "no_images": {
        "en": "This persona does not look at images. Pick one that does (Lab Cat or Kimi) and send it again.",
        "zh": "这个角色不看图片。请换一个能看图的角色（实验室老猫或 Kimi）再发送。",
    },
    "blind_model": {
        "en": "The model {model} cannot see images. Pick a vision model (such as kimi-k2.6) in Settings, "
        "or another persona, and send the image again.",
        "zh": "模型 {model} 无法识别图片。请在设置里换一个视觉模型（如 kimi-k2.6）或换个角色后再发送。",
    },
    "reading": {"en": "📄 Reading {names}…", "zh": "📄 正在阅读 {names}…"},
    "read": {"en": "📄 Read {names}", "zh": "📄 已阅读 {names}"},
    "searching": {"en": "🔎 Searching the web…", "zh": "🔎 正在联网搜索…"},
    "searched": {"en": "🔎 Searched the web ({n}×)", "zh": "🔎 已联网搜索（{n} 次）"},
    "search_cut_short": {
        "en": "The web search was cut short after {n} rounds: this answer uses what was found by then.",
        "zh": "联网搜索在 {n} 轮后被截止：以下回答基于此前找到的内容。",
    },
    "budget": {
        "en": "This visit has used {used} tokens; the Space allows {limit} per visit. Please come back later.",
        "zh": "本次访问已使用 {used} 个 token，本 Space 每次访问上限为 {limit}。请稍后再来。",
    },
    "space_limit": {
        "en": "This Space has reached its limit for now. Please come back in about {minutes} min.",
        "zh": "本 Space 暂时达到了使用上限，请约 {minutes} 分钟后再来。",
    },
    "token_limited": {
        "en": "You have used this Space's token allowance for now. Please wait about {minutes} min.",
        "zh": "你暂时用完了本 Space 的 token 额度，请约 {minutes} 分钟后再试。",
    },
    "sign_in_for_more": {
        "en": "Signed in with Hugging Face, you get {factor} times as much.",
        "zh": "用 Hugging Face 账号登录后，额度是现在的 {factor} 倍。",
    },
    "limits_down": {
        "en": "This Space cannot check its usage limits right now, so nothing is sent. Please try again shortly.",
        "zh": "本 Space 暂时无法核对使用限额，因此没有发送。请稍后再试。",
    },
    "edge_limited": {
        "en": "Too many requests from your address. Please wait {seconds} s.",
        "zh": "来自你的地址的请求太多了，请 {seconds} 秒后再试。",
    },
    "too_many_files": {
        "en": "That is more files than one message can carry here (at most {limit}).",
        "zh": "这条消息的文件太多了（最多 {limit} 个）。",
    },
    "file_by_url": {
        "en": "A file must be uploaded to this Space, not named by its address.",
        "zh": "文件需要上传到本 Space，不能只给出它的网址。",
    },
    "persona_gone": {
        "en": "This chat was saved with a persona this Space no longer has: it goes on with {persona}.",
        "zh": "这段对话保存时所用的角色已不在本 Space 中：将由{persona}继续。",
    },
    "one_at_a_time": {
        "en": "Your previous reply is still being written. Wait for it (or stop it), then send again.",
        "zh": "上一条回复还在生成中。请等它完成（或停止它）后再发送。",
    },
    "request_too_big": {
        "en": "This is too long to send: about {tokens} tokens with the files and turns it needs, and this "
        "Space sends at most {limit} in one request. Shorten it, or start a new chat.",
        "zh": "内容太长，无法发送：连同所需的文件和对话约 {tokens} 个 token，而本 Space 单次请求最多 {limit} 个。"
        "请缩短，或开始新对话。",
    },
    "document_too_big": {
        "en": "This document is too long for {model}: about {tokens} tokens with the conversation's start, "
        "and {model} takes {limit} in one request here.",
        "zh": "这份文档对 {model} 来说太长：连同对话开头约 {tokens} 个 token，而 {model} 在这里单次最多 {limit} 个。",
    },
    "document_try_model": {
        "en": "Pick {model} in Settings (a larger window) and send it again.",
        "zh": "请在设置里选择 {model}（上下文更长）后再发送。",
    },
    "document_space_limit": {
        "en": "This Space reads at most {limit} tokens at once: send a shorter part of it.",
        "zh": "本 Space 单次最多读取 {limit} 个 token：请发送其中较短的一部分。",
    },
    "upstream_failed": {
        "en": "Kimi could not answer this time ({reason}). Please try again.",
        "zh": "Kimi 这次没能回答（{reason}），请重试。",
    },
    "cut_off": {
        "en": "The reply was cut off: the connection to Kimi broke. What arrived is kept above.",
        "zh": "回复被中断：与 Kimi 的连接断开了。已收到的内容保留在上方。",
    },
    "stopped_midway": {
        "en": "The reply stopped part-way: {reason} What arrived is kept above.",
        "zh": "回复中途停止：{reason} 已收到的内容保留在上方。",
    },
    "length": {
        "en": "The reply hit the length limit and stops here.",
        "zh": "回复达到长度上限，到此为止。",
    },
    "length_continue": {
        "en": "The reply hit the length limit. Continue picks it up where it stopped.",
        "zh": "回复达到长度上限。点“继续”可从中断处接着写。",
    },
    "continue": {"en": "⏩ Continue", "zh": "⏩ 继续"},  # the option's label, and the message it sends
    "cannot_continue": {
        "en": "There is nothing to continue here: Continue goes on from the last reply only if the length limit "
        "cut it, under the same persona. Ask again, or say where to pick up.",
        "zh": "这里没有可继续的内容：只有被长度上限截断的最后一条回复（且人设未变）才能继续。"
        "请重新提问，或说明从哪里接着写。",
    },
    "cannot_continue_model": {
        "en": "{model} always thinks before it answers, and Kimi cannot continue a reply that way. "
        "Pick another model in Settings, or ask again.",
        "zh": "{model} 总会先思考再回答，Kimi 无法以这种方式续写回复。请在设置中换一个模型，或重新提问。",
    },
    "unknown_persona": {
        "en": "There is no persona {persona!r} here. The personas are: {ids}.",
        "zh": "这里没有人设 {persona!r}。可用的人设：{ids}。",
    },
    "model_not_offered": {
        "en": "Model {model!r} is not offered here. The models are: {ids}.",
        "zh": "这里不提供模型 {model!r}。可用的模型：{ids}。",
    },
    "mcp_busy": {
        "en": "This Space is answering as many agents as it can right now. Please try again in a minute.",
        "zh": "本 Space 正在同时回答尽可能多的智能体，请一分钟后再试。",
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


@dataclass(frozen=True)
class Refusal:
    """Why something was not done, the one shape every gate, check and failure says no with: a key
    into ``STRINGS``, its values (a value that is itself a Refusal is worded in place), and perhaps
    a sentence that follows (advice). Worded in the visitor's language only here, by ``words``."""

    key: str
    values: Mapping[str, object] = field(default_factory=dict)
    then: Refusal | None = None

    def words(self, lang: Lang) -> str:
        values = {k: v.words(lang) if isinstance(v, Refusal) else v for k, v in self.values.items()}
        told = t(self.key, lang, **values)
        return f"{told} {self.then.words(lang)}" if self.then else told
