"""The duckmkt commands as real processes under a Chinese and an English locale.

Each command's output must be in the locale's language: Chinese output has
CJK text and no English sentence left (codes, names, option names and SQL
stay English), English output has no CJK text.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import typer.main

from duckmkt.cli import activate_language
from duckmkt.commands import build_app

LOCALES = {"zh": "zh_CN.UTF-8", "en": "en_US.UTF-8"}
CJK = re.compile(r"[\u4e00-\u9fff]")

# Three or more English words in a row: the shape of a sentence left
# untranslated. Codes (churn_risk), dotted and path names (mkt.customer_scores,
# models/customer), options (--epochs) and calls (score_customer(f)) do not
# count, because the characters next to their words exclude them.
ENGLISH_SENTENCE = re.compile(r"(?<![\w./'\-])[A-Za-z][a-z]+(?:,? [a-z]+){2,}(?![\w/'(\-]|\.\w)")

# Lines with English words in Chinese output: the usage line names the
# command (duckmkt models list), and the score command prints the SQL it ran.
UNTRANSLATED_LINE = re.compile(r"^\W*(用法：|with |select |from |where |order by |group by |limit |\))")


def run_duckmkt(*args, lang: str, timeout: float = 600, columns: int = 200) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key not in ("LC_ALL", "LC_MESSAGES", "LANGUAGE")}
    env["LANG"] = lang
    # A wide terminal keeps Rich from wrapping help text mid-sentence.
    env["COLUMNS"] = str(columns)
    return subprocess.run(
        [sys.executable, "-m", "duckmkt", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def english_sentences(text: str) -> list[str]:
    """Return the English word runs of ``text`` outside the lines that stay English."""
    found = []
    for line in text.splitlines():
        if UNTRANSLATED_LINE.match(line):
            continue
        found += ENGLISH_SENTENCE.findall(line)
    return found


def assert_language(result: subprocess.CompletedProcess, language: str) -> None:
    output = result.stdout + result.stderr
    if language == "zh":
        assert CJK.search(output), output
        assert english_sentences(output) == [], output
    else:
        assert not CJK.search(output), output


def command_paths() -> list[tuple[str, ...]]:
    """Return the path of every command and command group, the root first."""
    activate_language("en")
    paths = []

    def walk(command, prefix: tuple[str, ...]) -> None:
        paths.append(prefix)
        for name, subcommand in sorted(getattr(command, "commands", {}).items()):
            walk(subcommand, (*prefix, name))

    walk(typer.main.get_command(build_app()), ())
    return paths


def chinese_commands() -> dict[tuple[str, ...], typer.core.TyperCommand]:
    """Return every command and command group by path, built with Chinese help text."""
    activate_language("zh")
    commands = {}

    def walk(command, prefix: tuple[str, ...]) -> None:
        commands[prefix] = command
        for name, subcommand in getattr(command, "commands", {}).items():
            walk(subcommand, (*prefix, name))

    walk(typer.main.get_command(build_app()), ())
    return commands


def expected_help_texts(command) -> list[str]:
    """Return the texts that the help of ``command`` must show in full.

    These are each visible parameter's help and shown default, and the first
    paragraph of each visible subcommand's help.
    """
    texts = []
    for param in command.params:
        if getattr(param, "hidden", False):
            continue
        if getattr(param, "help", None):
            texts.append(param.help)
        # Typer shows no default that is None, and none for a flag without a
        # --no- form, which every duckmkt flag is.
        if param.default is not None and not getattr(param, "is_bool_flag", False):
            texts.append(f"[默认值：{param.default}]")
    for subcommand in getattr(command, "commands", {}).values():
        if not subcommand.hidden:
            texts.append((subcommand.short_help or subcommand.help or "").split("\n\n")[0])
    return texts


def without_layout(text: str) -> str:
    """Return ``text`` without whitespace and panel borders, so that a help text wrapped over table rows reads as one run."""
    return re.sub(r"[\s│]", "", text)


def test_english_sentence_pattern_finds_prose():
    assert english_sentences("Scored the customers into the table.") == ["Scored the customers into the table"]
    assert english_sentences("已为 12 位客户打分并写入 mkt.customer_scores。") == []
    assert english_sentences("策略  product_recommendation  churn_risk >= churn_risk_high") == []


def test_command_paths_cover_groups():
    paths = command_paths()

    assert () in paths
    assert ("load",) in paths
    assert ("models", "promote") in paths
    assert ("strategy", "set") in paths


@pytest.mark.parametrize("language", sorted(LOCALES))
def test_help_of_every_command_in_locale(language):
    paths = command_paths()
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda path: run_duckmkt(*path, "--help", lang=LOCALES[language]), paths))

    for path, result in zip(paths, results):
        assert result.returncode == 0, (path, result.stderr)
        assert_language(result, language)
        # A flag takes no value, so its row shows no value type.
        assert "<bool>" not in result.stdout, path
        if language == "zh":
            assert "Show this message and exit." not in result.stdout, path
            assert "Usage:" not in result.stdout, path
            assert "用法：" in result.stdout, path


def test_chinese_help_at_80_columns_complete():
    commands = chinese_commands()
    paths = list(commands)
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda path: run_duckmkt(*path, "--help", lang=LOCALES["zh"], columns=80), paths))

    for path, result in zip(paths, results):
        assert result.returncode == 0, (path, result.stderr)
        # Rich ends a text it cuts off with an ellipsis.
        assert "…" not in result.stdout, (path, result.stdout)
        help_page = without_layout(result.stdout)
        for text in expected_help_texts(commands[path]):
            assert without_layout(text) in help_page, (path, text, result.stdout)


@pytest.mark.train
@pytest.mark.parametrize("language", sorted(LOCALES))
def test_main_commands_in_locale(language, tmp_path, small_orders_csv):
    lang = LOCALES[language]
    db = tmp_path / "cli.duckdb"
    csv = tmp_path / small_orders_csv.name
    shutil.copy(small_orders_csv, csv)
    models_dir = tmp_path / "models"

    loaded = run_duckmkt("load", db, csv, lang=lang)
    assert loaded.returncode == 0, loaded.stderr
    assert_language(loaded, language)

    repeated = run_duckmkt("load", db, csv, lang=lang)
    assert repeated.returncode == 0, repeated.stderr
    assert_language(repeated, language)

    quality = run_duckmkt("quality", db, lang=lang)
    assert quality.returncode == 0, quality.stderr
    assert_language(quality, language)

    trained = run_duckmkt("train", db, "--models-dir", models_dir, "--epochs", 2, lang=lang)
    assert trained.returncode == 0, trained.stderr
    assert_language(trained, language)

    scored = run_duckmkt("score", db, "--models-dir", models_dir, lang=lang)
    assert scored.returncode == 0, scored.stderr
    assert_language(scored, language)

    # A version that was never trained: the models recorded in the database
    # are found from any --models-dir, so only a wrong version is an error.
    missing = run_duckmkt("score", db, "--models-dir", Path(tmp_path / "empty"), "--model", "20000101T000000Z", lang=lang)
    assert missing.returncode == 1
    assert_language(missing, language)
