"""The README's Layout section names every module of the project."""
from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODULES = sorted(path for folder in ("search", "spaces", "bench") for path in (ROOT / folder).iterdir()
                 if path.suffix in (".py", ".sh"))


@pytest.mark.parametrize("module", MODULES, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_readme_layout_names_the_module(module: Path) -> None:
    layout = (ROOT / "README.md").read_text().split("## Layout", 1)[1]
    assert f"`{module.name}`" in layout
