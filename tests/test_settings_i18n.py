"""Settings from the environment, and which language a visitor reads."""

from __future__ import annotations

import pytest

from kimichat.i18n import STRINGS, pick_lang
from kimichat.settings import Settings, SettingsError


def test_defaults_and_overrides():
    assert Settings.from_env({}).base_url == "https://api.moonshot.cn/v1"
    s = Settings.from_env(
        {"MOONSHOT_BASE_URL": "https://api.moonshot.ai/v1", "CHAT_CONCURRENCY": "7", "SPACE_ID": "me/chat"}
    )
    assert s.base_url.endswith(".ai/v1") and s.chat_concurrency == 7
    assert s.settings_url == "https://huggingface.co/spaces/me/chat/settings"


def test_key_never_in_repr():
    assert "sk-test-hidden" not in repr(Settings.from_env({"MOONSHOT_API_KEY": "sk-test-hidden"}))


@pytest.mark.parametrize("env", [{"CHAT_CONCURRENCY": "many"}, {"MOONSHOT_BASE_URL": "ftp://x"}])
def test_bad_values_name_the_variable(env):
    with pytest.raises(SettingsError, match=next(iter(env))):
        Settings.from_env(env)


@pytest.mark.parametrize(
    ("header", "lang"),
    [
        ("zh-CN,zh;q=0.9", "zh"),
        ("en-US,en;q=0.9,zh;q=0.8", "en"),
        ("fr-FR,zh;q=0.5", "zh"),
        ("de", "en"),
        (None, "en"),
        ("en;q=0.1,zh-TW;q=0.9", "zh"),
    ],
)
def test_language_follows_accept_language(header, lang):
    assert pick_lang(header) == lang


def test_every_string_exists_in_both_languages():
    assert all(set(words) == {"en", "zh"} and all(words.values()) for words in STRINGS.values())


def test_sign_in_only_on_a_space_with_oauth():
    """Off a Space a login button would make Gradio want this machine's own Hugging Face login at
    startup, so OAuth variables alone (a copied .env, say) show none."""
    assert Settings.from_env({"OAUTH_CLIENT_ID": "x", "SPACE_ID": "me/chat"}).sign_in
    assert not Settings.from_env({"OAUTH_CLIENT_ID": "x"}).sign_in
    assert not Settings.from_env({"SPACE_ID": "me/chat"}).sign_in
