"""The persona loader: the shipped file is valid, and each kind of mistake reads clearly."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import KEY, NO_LIMITS, ROOT, answer_of, run

from kimichat.personas import PersonaFileError, load_personas
from kimichat.settings import Settings

GOOD = """\
personas:
  - id: one
    name: {en: One, zh: 一}
    description: d
    system_prompt: p
"""


def error_for(tmp_path: Path, text: str) -> str:
    path = tmp_path / "personas.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PersonaFileError) as info:
        load_personas(path)
    return str(info.value).replace(str(path), "FILE")


def test_shipped_personas_are_valid_and_bilingual():
    personas = load_personas(ROOT / "personas.yaml")
    assert len(personas.visible) >= 5
    assert personas.first.id == "researcher"
    for p in personas.personas:
        for text in (p.name, p.description, p.greeting):
            assert text and text.en and text.zh, p.id
        assert p.examples, p.id
    researcher = personas.by_id["researcher"].prompt("en")
    for word in ("terrorism", "discrimination", "pornography", "violence"):
        assert word in researcher


def test_plain_strings_serve_both_languages(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(GOOD)
    persona = load_personas(path).personas[0]
    assert persona.name.get("zh") == "一" and persona.description.get("zh") == "d"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD.replace("    system_prompt: p\n", ""), "FILE:2: personas[0].system_prompt: Field required"),
        (GOOD + "    sytem_prompt: typo\n", "FILE:6: personas[0].sytem_prompt: Extra inputs are not permitted"),
        (GOOD + "    temperature: 3\n", "FILE:6: personas[0].temperature: Input should be less than or equal to 1"),
        (GOOD.replace("id: one", "id: Not A Slug"), "FILE:2: personas[0].id: String should match pattern"),
        (GOOD + "    examples: [1, 2]\n", "FILE:6: personas[0].examples[0]"),
        (GOOD + "    thinking: maybe\n", "FILE:6: personas[0].thinking: Input should be 'auto', 'on' or 'off'"),
        (GOOD.replace("name: {en: One, zh: 一}", "name: {}"), "FILE:3: personas[0].name: Value error, needs text"),
        (GOOD + GOOD.replace("personas:\n", ""), "FILE:1: personas: Value error, duplicate persona id 'one'"),
        ("default: two\n" + GOOD, "FILE:1: (top level): Value error, default persona 'two' is not one of the ids"),
        ("personas: []\n", "FILE:1: personas: List should have at least 1 item"),
        ("personas:\n  - id: a\n\tname: x\n", "FILE:3: not valid YAML"),
        ("just a string\n", "FILE:1: (top level): Input should be a valid dictionary"),
    ],
    ids=[
        "missing",
        "typo",
        "range",
        "slug",
        "example",
        "enum",
        "empty-text",
        "duplicate",
        "default",
        "empty",
        "syntax",
        "not-mapping",
    ],
)
def test_each_mistake_names_file_line_and_field(tmp_path, text, expected):
    assert error_for(tmp_path, text).startswith(expected)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(PersonaFileError, match=r"nope\.yaml: cannot read"):
        load_personas(tmp_path / "nope.yaml")


async def test_hidden_personas_are_not_offered_but_still_answer_by_id(tmp_path, upstream):
    from kimichat.chat import ChatService
    from kimichat.ui import persona_choices

    path = tmp_path / "personas.yaml"
    path.write_text(
        "personas:\n"
        "  - {id: shown, name: Shown, description: d, system_prompt: the shown one}\n"
        "  - {id: secret, name: Secret, description: d, system_prompt: the hidden one, hidden: true}\n",
        encoding="utf-8",
    )
    personas = load_personas(path)
    assert [value for _, value in persona_choices(personas, "en")] == ["shown"]
    assert personas.by_id["secret"].hidden and personas.first.id == "shown"
    service = ChatService.from_settings(Settings(api_key=KEY, base_url=upstream.base_url, **NO_LIMITS), personas)
    assert answer_of((await run(service, "hello", persona="secret"))[-1].messages).startswith("Echo")
    assert upstream.calls[-1].system == "the hidden one"  # an API caller naming it is answered by it
