"""The README's example: a LightningModule of one's own from ctdl.dynamics and ctdl.integrators."""

import re

from .helpers import ROOT


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Use ctdl's parts in your own Lightning project", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_reuse_example_trains_with_core_parts_only(tmp_path, monkeypatch):
    code = readme_example()
    imports = set(re.findall(r"^from (ctdl[\w.]*) import", code, re.M))
    assert imports == {"ctdl.dynamics", "ctdl.integrators"}  # nothing task-specific
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    # a linear classifier on the raw points is near the majority rate; the ODE makes them separable
    majority = max(namespace["y"].float().mean().item(), 1 - namespace["y"].float().mean().item())
    assert namespace["accuracy"] > 0.95 > majority + 0.2
