"""personas.yaml: its schema, and a loader whose errors name the file, line and field.

Adding a persona is editing YAML, never code, so a mistake there must read like a
compiler error: ``personas.yaml:14: personas[2].system_prompt: Field required``.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .i18n import Lang


class PersonaFileError(ValueError):
    """personas.yaml cannot be used; the message is meant for the owner as it is."""


class Localized(BaseModel):
    """Text a visitor reads, in English and Chinese; either may be missing, not both."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    en: str | None = None
    zh: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_plain_string(cls, value: object) -> object:
        return {"en": value, "zh": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_language_at_least(self) -> Localized:
        if not (self.en or self.zh):
            raise ValueError("needs text in `en` or `zh`")
        return self

    def get(self, lang: Lang) -> str:
        """The text in ``lang``, or in the other language when this one is missing."""
        return getattr(self, lang) or self.en or self.zh or ""


class Example(BaseModel):
    """A conversation starter: ``text`` is sent, ``label`` (if any) is shown."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    text: Localized
    label: Localized | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_plain_text(cls, value: object) -> object:
        return {"text": value} if isinstance(value, str) else value


class Shot(BaseModel):
    """One few-shot exchange placed after the system prompt."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    user: str
    assistant: str


class Persona(BaseModel):
    """One persona: who the assistant is, how it opens, and which model it prefers."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
    name: Localized
    description: Localized
    avatar: Annotated[str, Field(min_length=1, max_length=16)] = "🤖"
    category: Localized | None = None
    system_prompt: Localized
    few_shot: list[Shot] = []
    greeting: Localized | None = None
    examples: Annotated[list[Example], Field(max_length=8)] = []
    model: str | None = None
    temperature: Annotated[float, Field(ge=0, le=1)] | None = None
    top_p: Annotated[float, Field(gt=0, le=1)] | None = None
    max_tokens: Annotated[int, Field(gt=0)] | None = None
    thinking: Literal["auto", "on", "off"] = "auto"
    documents: bool = False  # may read PDFs, Word files, text... (Moonshot extracts them)
    images: bool = False  # may look at images (with a vision model)
    web_search: bool = False  # may use Kimi's built-in $web_search (about ¥0.03 a search)
    in_character: bool = False  # replies open as the persona's named turn (Moonshot's role-play Partial Mode)
    hidden: bool = False

    def prompt(self, lang: Lang, today: date | None = None) -> str:
        """The system prompt in ``lang``, with ``{{date}}`` filled in."""
        return self.system_prompt.get(lang).replace("{{date}}", (today or date.today()).isoformat())


class PersonaFile(BaseModel):
    """The whole file: the personas in picker order, and which one opens first."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    default: str | None = None
    personas: Annotated[list[Persona], Field(min_length=1)]

    @field_validator("personas")
    @classmethod
    def _unique_ids(cls, personas: list[Persona]) -> list[Persona]:
        seen: set[str] = set()
        for persona in personas:
            if persona.id in seen:
                raise ValueError(f"duplicate persona id {persona.id!r}")
            seen.add(persona.id)
        if all(p.hidden for p in personas):
            raise ValueError("every persona is hidden: show at least one")
        return personas

    @model_validator(mode="after")
    def _default_exists(self) -> PersonaFile:
        if self.default is not None and self.default not in self.by_id:
            raise ValueError(f"default persona {self.default!r} is not one of the ids")
        return self

    @property
    def by_id(self) -> dict[str, Persona]:
        return {p.id: p for p in self.personas}

    @property
    def visible(self) -> list[Persona]:
        return [p for p in self.personas if not p.hidden]

    @property
    def first(self) -> Persona:
        return self.by_id[self.default] if self.default else self.visible[0]


def load_personas(path: Path) -> PersonaFile:
    """Read and check ``path``; every problem is a ``PersonaFileError`` with file:line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PersonaFileError(f"{path}: cannot read the persona file ({exc.strerror})") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise PersonaFileError(f"{path}{line}: not valid YAML: {problem}") from None
    try:
        return PersonaFile.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = _visible_loc(error["loc"])
            field = _dotted(loc) or "(top level)"
            problems.append(f"{path}:{_line_of(root, loc)}: {field}: {error['msg']}")
        raise PersonaFileError("\n".join(problems)) from None


def _visible_loc(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """Drop pydantic's internal steps (union branches) so the path matches the YAML."""
    return tuple(p for p in loc if not (isinstance(p, str) and ("[" in p or p in {"str", "dict"})))


def _dotted(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _line_of(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int:
    """The 1-based line of the deepest YAML node that ``loc`` reaches."""
    if node is None:
        return 1
    line = node.start_mark.line + 1
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == part:
                    child, line = value, key.start_mark.line + 1
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
            line = child.start_mark.line + 1
        if child is None:
            break
        node = child
    return line
