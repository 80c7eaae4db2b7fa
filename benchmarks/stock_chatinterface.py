"""The reference the app must beat: a stock ``gr.ChatInterface`` streaming from ``AsyncOpenAI``,
as tutorials write it (the accumulated text yielded per token, no concurrency limit).

    .venv/bin/python benchmarks/load.py --users 100 --app benchmarks/stock_chatinterface.py
"""

import os

import gradio as gr
from openai import AsyncOpenAI

client = AsyncOpenAI(api_key=os.environ["MOONSHOT_API_KEY"], base_url=os.environ["MOONSHOT_BASE_URL"])


def text_of(content) -> str:
    return content if isinstance(content, str) else "".join(part.get("text", "") for part in content)


async def respond(message: str, history: list[dict]):
    messages = [{"role": m["role"], "content": text_of(m["content"])} for m in history]
    stream = await client.chat.completions.create(
        model="kimi-k2.6", messages=[*messages, {"role": "user", "content": message}], stream=True
    )
    text = ""
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
            yield text


demo = gr.ChatInterface(respond, concurrency_limit=None, api_name="chat")

if __name__ == "__main__":
    demo.launch()
