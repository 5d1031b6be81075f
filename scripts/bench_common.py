"""What every scripts/bench_<topic>.py shares: the machine description, JSON results per part
under benchmarks/<topic>_<part>.json, and the markdown report benchmarks/<topic>.md."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import torch

OUT = Path(__file__).resolve().parents[1] / "benchmarks"


def environment() -> dict:
    """Machine, thread count and versions, stored with every result."""
    import lightning
    import torchdiffeq

    return {
        "machine": platform.machine(),
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "torchdiffeq": torchdiffeq.__version__,
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def save(topic: str, part: str, result: dict) -> None:
    """Write benchmarks/<topic>_<part>.json (with the environment) and print it."""
    OUT.mkdir(exist_ok=True)
    result = {"part": part, "env": environment(), **result}
    (OUT / f"{topic}_{part}.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2), flush=True)


def table(rows: list[dict]) -> str:
    """A markdown table over the union of the rows' scalar keys (nested values such as training
    curves stay in the JSON; a missing value shows as "-"); floats below 1 with 4 decimals, tiny
    ones in scientific notation."""
    keys = list(dict.fromkeys(k for r in rows for k, v in r.items() if not isinstance(v, dict | list)))

    def cell(v) -> str:
        if isinstance(v, float) and 0 < abs(v) < 1e-3:
            return f"{v:.2e}"
        return f"{v:.4f}" if isinstance(v, float) and abs(v) < 1 else str(v)

    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(cell(r.get(k, "-")) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def report(topic: str, title: str) -> None:
    """Merge benchmarks/<topic>_*.json into benchmarks/<topic>.md, one section a part."""
    md = [f"# {title} (scripts/bench_{topic}.py)", ""]
    for path in sorted(OUT.glob(f"{topic}_*.json")):
        part = json.loads(path.read_text())
        env = part["env"]
        md += [
            f"## {part['part']}",
            "",
            f"{env['cpu']}, {env['cores']} cores, {env['torch_threads']} torch threads, "
            f"GPU: {env['cuda'] or 'none'}; Python {env['python']}, torch {env['torch']}, "
            f"lightning {env['lightning']}, torchdiffeq {env['torchdiffeq']}",
            "",
        ]
        for key in ("target", "setup"):
            if key in part:
                md += [f"{key.capitalize()}: {part[key]}", ""]
        for key in ("summary", "rows", "runs"):
            if key in part:
                md += [table([{k: v for k, v in r.items() if k != "run_dir"} for r in part[key]]), ""]
    (OUT / f"{topic}.md").write_text("\n".join(md))
    print("\n".join(md))
