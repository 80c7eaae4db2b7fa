"""Files in a message, made ready for Kimi: documents read by Moonshot, images inlined.

Documents go to Moonshot's files API (``purpose="file-extract"``); the extracted text is
what the conversation needs, so the uploaded file is deleted at once and the text is
kept in a small in-process cache keyed by the file's SHA-256: a document is uploaded
once, not on every turn. Images travel as base64 data URLs, and only to models that
see. Every check that can refuse a file runs before anything is sent or spent.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from openai import AsyncOpenAI

from .i18n import Lang, t
from .models import ModelInfo
from .personas import Persona

log = logging.getLogger(__name__)

DOCUMENT_TYPES = frozenset(
    [
        ".pdf",
        ".txt",
        ".md",
        ".markdown",
        ".doc",
        ".docx",
        ".xls",
        ".xlsx",
        ".ppt",
        ".pptx",
        ".csv",
        ".tsv",
        ".json",
        ".html",
        ".htm",
        ".epub",
        ".tex",
        ".rtf",
        ".odt",
        ".py",
        ".js",
        ".ts",
        ".java",
        ".c",
        ".cpp",
        ".h",
        ".go",
        ".rs",
        ".rb",
        ".php",
        ".sh",
        ".yaml",
        ".yml",
        ".xml",
        ".log",
    ]
)
IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".gif": "image/gif",
}
ACCEPTED = sorted(DOCUMENT_TYPES | IMAGE_TYPES.keys())


@dataclass(frozen=True)
class Attachment:
    """A file made ready for Kimi: a document's extracted text, or an image's data URL."""

    kind: str  # "document" | "image"
    name: str
    data: str


def kind_of(path: str) -> str | None:
    suffix = Path(path).suffix.lower()
    return "image" if suffix in IMAGE_TYPES else "document" if suffix in DOCUMENT_TYPES else None


class Attachments:
    """Checks files and turns them into ``Attachment``s; holds the extraction cache."""

    def __init__(self, max_file_mb: float, cache_entries: int = 128):
        self.max_bytes = int(max_file_mb * 2**20)
        self._texts: OrderedDict[str, str] = OrderedDict()
        self._cache_entries = cache_entries
        self._locks: dict[str, asyncio.Lock] = {}
        self.uploads = 0  # how many files went to Moonshot (the cache keeps this low)

    def refusal(self, paths: Iterable[str], persona: Persona, model: ModelInfo, lang: Lang) -> str | None:
        """Why these files cannot go with this persona and model, or None if they can."""
        for path in paths:
            if not Path(path).exists():  # an old upload the server has since cleaned away
                continue
            name, kind = Path(path).name, kind_of(path)
            if kind is None:
                return t("file_type", lang, name=name, types=" ".join(ACCEPTED))
            if Path(path).stat().st_size > self.max_bytes:
                return t("file_size", lang, name=name, limit=self.max_bytes // 2**20)
            if kind == "document" and not persona.documents:
                return t("no_documents", lang)
            if kind == "image" and not persona.images:
                return t("no_images", lang)
            if kind == "image" and not model.vision:
                return t("blind_model", lang, model=model.id)
        return None

    async def prepare(self, client: AsyncOpenAI, paths: Iterable[str]) -> dict[str, Attachment]:
        """Each path as an Attachment: documents extracted (cached), images inlined."""
        ready = {}
        for path in dict.fromkeys(paths):
            if not Path(path).exists():
                log.warning("a file of an earlier turn is gone; the conversation goes on without it")
                continue
            name = Path(path).name
            if kind_of(path) == "image":
                data = base64.b64encode(Path(path).read_bytes()).decode()
                ready[path] = Attachment("image", name, f"data:{IMAGE_TYPES[Path(path).suffix.lower()]};base64,{data}")
            else:
                ready[path] = Attachment("document", name, await self._extract(client, Path(path)))
        return ready

    async def _extract(self, client: AsyncOpenAI, path: Path) -> str:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        async with self._locks.setdefault(digest, asyncio.Lock()):  # two turns, one upload
            if digest in self._texts:
                self._texts.move_to_end(digest)
                return self._texts[digest]
            uploaded = await client.files.create(file=path, purpose="file-extract")
            self.uploads += 1
            try:
                text = (await client.files.content(file_id=uploaded.id)).text
            finally:
                try:  # the text is all we need: the file does not stay on the owner's account
                    await client.files.delete(uploaded.id)
                except Exception as exc:  # cleanup is best effort; the reply does not depend on it
                    log.warning("could not delete an extracted file (%s)", type(exc).__name__)
            self._texts[digest] = text
            while len(self._texts) > self._cache_entries:
                self._texts.popitem(last=False)
        self._locks.pop(digest, None)
        return text
