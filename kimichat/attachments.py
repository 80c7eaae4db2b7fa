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
import contextlib
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from openai import APIStatusError, AsyncOpenAI

from .i18n import Refusal
from .models import ModelInfo
from .personas import Persona

log = logging.getLogger(__name__)

MAX_IMAGES = 6  # a request's images (the new ones and those re-sent from earlier turns) ...
MAX_IMAGE_BYTES = 24 * 2**20  # ... and their size: 32 MB as base64, well under Moonshot's 100 MB a request
DELETE_RETRY_DELAYS = (0.2, 1.0, 0.0)  # three tries a delete, then it waits for the next upload

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
IMAGE_TYPES = frozenset([".png", ".jpg", ".jpeg", ".webp", ".gif"])
ACCEPTED = sorted(DOCUMENT_TYPES | IMAGE_TYPES)
# What each kind of file starts with: a name says nothing of the bytes (HTML named .png, say).
SIGNATURES: dict[str, tuple[bytes, ...]] = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    ".pdf": (b"%PDF-",),
    ".rtf": (b"{\\rtf",),
    ".docx": (b"PK\x03\x04",),  # the Office Open and OpenDocument formats are zip files
    ".xlsx": (b"PK\x03\x04",),
    ".pptx": (b"PK\x03\x04",),
    ".epub": (b"PK\x03\x04",),
    ".odt": (b"PK\x03\x04",),
    ".doc": (b"\xd0\xcf\x11\xe0",),  # the old Office formats are OLE compound files
    ".xls": (b"\xd0\xcf\x11\xe0",),
    ".ppt": (b"\xd0\xcf\x11\xe0",),
}


@dataclass(frozen=True)
class Attachment:
    """A file made ready for Kimi: a document's extracted text, or an image's data URL."""

    kind: str  # "document" | "image"
    name: str
    data: str


def kind_of(path: str) -> str | None:
    suffix = Path(path).suffix.lower()
    return "image" if suffix in IMAGE_TYPES else "document" if suffix in DOCUMENT_TYPES else None


def image_type(head: bytes) -> str | None:
    """An image's MIME type from its first bytes, or None if they are not one Kimi reads."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return next(
        (kind for kind, marks in SIGNATURES.items() if kind.startswith("image/") and head.startswith(marks)), None
    )


def matches_name(path: Path) -> bool:
    """Whether the file's bytes are what its name says: an image's signature, a binary document's
    signature, and no NUL bytes in a text file (any encoding: GBK notes are text too)."""
    with path.open("rb") as file:
        head = file.read(8192)
    suffix = path.suffix.lower()
    if suffix in IMAGE_TYPES:
        return image_type(head) is not None
    if suffix in SIGNATURES:
        return head.startswith(SIGNATURES[suffix])
    return b"\x00" not in head


def images_to_send(turn_files: list[list[str]]) -> set[str]:
    """The images a request carries: the new turn's, then earlier ones newest first while the
    request stays within MAX_IMAGES and MAX_IMAGE_BYTES (a long chat would re-send every one)."""
    chosen: set[str] = set()
    size = 0
    for files in reversed(turn_files):
        for path in files:
            if kind_of(path) != "image" or not Path(path).exists():
                continue
            size += Path(path).stat().st_size
            if chosen and (len(chosen) >= MAX_IMAGES or size > MAX_IMAGE_BYTES):
                return chosen
            chosen.add(path)
    return chosen


class Attachments:
    """Checks files and turns them into ``Attachment``s; holds the extraction cache."""

    def __init__(self, max_file_mb: float, cache_entries: int = 128):
        self.max_bytes = int(max_file_mb * 2**20)
        self._texts: OrderedDict[str, str] = OrderedDict()
        self._cache_entries = cache_entries
        self._locks: dict[str, asyncio.Lock] = {}
        self._leftovers: set[str] = set()  # uploaded files whose delete failed, tried again later

    def refusal(self, paths: Iterable[str], persona: Persona, model: ModelInfo) -> Refusal | None:
        """Why these files cannot go with this persona and model, or None if they can."""
        for path in paths:
            if not Path(path).exists():  # an old upload the server has since cleaned away
                continue
            name, kind = Path(path).name, kind_of(path)
            if kind is None:
                return Refusal("file_type", {"name": name, "types": " ".join(ACCEPTED)})
            size = Path(path).stat().st_size
            if size > self.max_bytes:
                return Refusal("file_size", {"name": name, "limit": self.max_bytes // 2**20})
            if size == 0:
                return Refusal("file_empty", {"name": name})
            if kind == "document" and not persona.documents:
                return Refusal("no_documents")
            if kind == "image" and not persona.images:
                return Refusal("no_images")
            if kind == "image" and not model.vision:
                return Refusal("blind_model", {"model": model.id})
            if not matches_name(Path(path)):
                return Refusal("file_mismatch", {"name": name, "suffix": Path(path).suffix.lower()})
        return None

    def choose(
        self, turn_files: list[list[str]], new_files: Iterable[str], persona: Persona, model: ModelInfo
    ) -> list[str] | Refusal:
        """The conversation's files that go to Kimi (its documents, and as many images as a request
        carries: the new message's first, earlier ones may stay home), or why they cannot."""
        paths = [path for files in turn_files for path in files]
        refusal = self.refusal(paths, persona, model)
        if refusal:
            return refusal
        images = images_to_send(turn_files)
        if not images.issuperset(p for p in new_files if kind_of(p) == "image"):
            return Refusal("too_many_images", {"count": MAX_IMAGES, "mb": MAX_IMAGE_BYTES // 2**20})
        return [p for p in paths if kind_of(p) != "image" or p in images]

    async def prepare(self, client: AsyncOpenAI, paths: Iterable[str]) -> dict[str, Attachment]:
        """Each path as an Attachment: documents extracted (cached), images inlined."""
        ready = {}
        for path in dict.fromkeys(paths):
            if not Path(path).exists():
                log.warning("a file of an earlier turn is gone; the conversation goes on without it")
                continue
            name = Path(path).name
            if kind_of(path) == "image":
                raw = Path(path).read_bytes()
                data = base64.b64encode(raw).decode()
                ready[path] = Attachment("image", name, f"data:{image_type(raw[:16])};base64,{data}")
            else:
                ready[path] = Attachment("document", name, await self._extract(client, Path(path)))
        return ready

    async def _extract(self, client: AsyncOpenAI, path: Path) -> str:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        async with self._locks.setdefault(digest, asyncio.Lock()):  # two turns, one upload
            if digest in self._texts:
                self._texts.move_to_end(digest)
                return self._texts[digest]
            await self._delete_leftovers(client)
            upload = asyncio.ensure_future(client.files.create(file=path, purpose="file-extract"))
            try:
                uploaded = await asyncio.shield(upload)
            except asyncio.CancelledError:  # a stop mid-upload: the file lands all the same, and must go
                with contextlib.suppress(Exception):
                    await self._delete(client, (await upload).id)
                raise
            try:
                text = await self._read(client, uploaded.id, uploaded.status, path.name)
            finally:  # the text is all we need: the file does not stay on the owner's account
                await self._delete(client, uploaded.id)
            self._texts[digest] = text
            while len(self._texts) > self._cache_entries:
                self._texts.popitem(last=False)
        self._locks.pop(digest, None)
        return text

    @staticmethod
    async def _read(client: AsyncOpenAI, file_id: str, status: str | None, name: str) -> str:
        """The extracted text; Moonshot's failure to read the file is told apart from a busy or
        refused API (those keep their own sentences)."""
        if status == "error":
            raise FileUnreadable(name)
        try:
            return (await client.files.content(file_id=file_id)).text
        except APIStatusError as exc:
            if exc.status_code in (401, 403, 429):
                raise
            raise FileUnreadable(name) from None

    async def _delete(self, client: AsyncOpenAI, file_id: str) -> None:
        """Delete an uploaded file, tried again on failure (an account holds at most 1,000 files);
        one that still will not go is kept and tried again before the next upload."""
        for delay in DELETE_RETRY_DELAYS:
            try:
                await client.files.delete(file_id)
                return
            except Exception as exc:  # the reply does not depend on it: never raised
                log.warning("could not delete an extracted file (%s)", type(exc).__name__)
            await asyncio.sleep(delay)
        self._leftovers.add(file_id)

    async def _delete_leftovers(self, client: AsyncOpenAI) -> None:
        for file_id in list(self._leftovers):
            self._leftovers.discard(file_id)
            await self._delete(client, file_id)


class FileUnreadable(Exception):
    """Moonshot could not extract text from this file (the name is the visitor's own)."""

    def __init__(self, name: str):
        super().__init__(name)
        self.name = name
