"""The docs stay honest: every setting in .env.example with its default, every command in the
README, and the README opening with the two set-up commands CI runs."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from bot.cli import parser
from bot.config import Settings

ROOT = Path(__file__).parent.parent


def _settings(model: type[BaseModel], prefix: str = "WHYDOWN_") -> Iterator[tuple[str, Any]]:
    for name, field in model.model_fields.items():
        default = field.get_default(call_default_factory=True)
        if isinstance(default, BaseModel):
            yield from _settings(type(default), f"{prefix}{name.upper()}__")
        else:
            yield f"{prefix}{name.upper()}", default


def _env_example() -> dict[str, str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def _as_env(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def test_env_example_lists_every_setting_with_its_default() -> None:
    documented = _env_example()
    expected = dict(_settings(Settings))
    assert set(documented) == set(expected)
    for key, default in expected.items():
        assert documented[key] == _as_env(default) or float(documented[key]) == default, key


def test_env_example_loads_to_the_defaults(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text((ROOT / ".env.example").read_text())
    assert Settings(_env_file=env).model_dump() == Settings(_env_file=None).model_dump()


def test_every_setting_has_a_comment() -> None:
    """Each setting sits in a paragraph that explains it."""
    for paragraph in (ROOT / ".env.example").read_text().split("\n\n"):
        lines = paragraph.strip().splitlines()
        settings = [line for line in lines if not line.startswith("#")]
        assert not settings or any(line.startswith("# ") for line in lines), settings


def test_readme_opens_with_the_two_set_up_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:sh|bash|console)?\n(.*?)```", readme, flags=re.S)
    assert blocks[0].strip().endswith("whydown demo")
    test_command = blocks[1].strip()
    assert "pytest" in test_command
    assert test_command in (ROOT / ".ci" / "run").read_text()


def test_readme_documents_every_cli_command() -> None:
    readme = (ROOT / "README.md").read_text()
    subcommands = parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name in subcommands:
        assert f"whydown {name}" in readme, name


def test_json_schema_of_the_explanation_is_current() -> None:
    from explainers.models import Explanation

    schema = json.loads((ROOT / "docs" / "explanation.schema.json").read_text())
    assert schema == Explanation.model_json_schema(), (
        "regenerate docs/explanation.schema.json (see README)"
    )
