"""The project's own rules, checked: the core imports no Lightning, every package is installed,
the docs' result tables are generated from benchmarks/, the README stays short."""

import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path

import ctdl

ROOT = Path(__file__).resolve().parents[1]
LIGHTNING_ENTRY_POINTS = {"ctdl.cli", "ctdl.__main__"}
INSTALLED_AS = {
    "ctdl": "ctdl",
    "ctdl.models": "models",
    "ctdl.datamodules": "datamodules",
    "ctdl.callbacks": "callbacks",
}


def core_modules() -> list[str]:
    """Every module under ctdl/ (found on disk, not from a list), but the CLI entry points."""
    found = [m.name for m in pkgutil.walk_packages(ctdl.__path__, prefix="ctdl.")]
    modules = [m for m in found if m.split(".")[1] not in ("models", "datamodules", "callbacks")]
    return sorted(set(modules) - LIGHTNING_ENTRY_POINTS)


def test_no_core_module_imports_lightning():
    modules = core_modules()
    assert len(modules) > 30, modules  # the walk found the tree, not an empty package
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning'))\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]


def test_every_package_folder_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    assert config["package-dir"] == INSTALLED_AS
    on_disk = set()
    for name, folder in INSTALLED_AS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            on_disk.add(".".join([name, *rel.parts]))
    assert on_disk - listed == set(), f"add these packages to pyproject.toml: {sorted(on_disk - listed)}"
    assert listed - on_disk == set(), (
        f"pyproject.toml lists packages that do not exist: {sorted(listed - on_disk)}"
    )


def test_docs_tables_are_generated_from_the_benchmark_files():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import harness
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    stale = harness.render_docs(check=True)
    assert stale == [], f"run `python scripts/harness.py` to regenerate the tables in {stale}"


def test_readme_stays_short_and_links_every_task_page():
    text = (ROOT / "README.md").read_text()
    assert len(text) < 10_000, len(text)
    for page in sorted((ROOT / "docs").glob("*.md")):
        assert f"docs/{page.name}" in text, f"README.md does not link docs/{page.name}"


DOC_SECTIONS = [
    "Problem and math",
    "Code map",
    "How to run",
    "Results",
    "How the configs were chosen",
    "What is not met yet",
]


def test_every_task_page_has_the_same_sections_in_order():
    for page in sorted((ROOT / "docs").glob("*.md")):
        sections = [line[3:].strip() for line in page.read_text().splitlines() if line.startswith("## ")]
        assert sections == DOC_SECTIONS, f"{page.name}: {sections}"
