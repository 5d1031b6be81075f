"""The one benchmark harness every scripts/bench_<task>.py composes.

- `parser(doc, parts)`: one argument convention for all bench scripts: the part is a subcommand,
  options are `--kebab-case`, lists are space-separated (`--budgets 1000 10000`), `ctdl` overrides
  come last after `--override`.
- `fit(config, label, overrides)` runs `ctdl fit` on a shipped config with a `TrainClock` (the
  seconds inside training batches alone: no validation, checkpointing or figures) and returns a
  `Run` (run folder, best checkpoint, steps, seconds); `test(run)` runs `ctdl test` on its best
  checkpoint and returns the `test/*` metrics.
- `curve(run_dir, keys)`: rows of a run's metrics.csv that log any of `keys`.
- `upsert(task, part, rows, key)`: replace the rows with the same key in
  benchmarks/<task>_<part>.json (each row keeps the settings it ran with), keep the others, store
  the environment record; `report(task, title)` writes benchmarks/<task>.md from those files.
- `table(rows)`: the markdown table of a list of rows.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(os.environ.get("CTDL_BENCH_OUT") or ROOT / "benchmarks")  # a smoke run writes elsewhere
RUNS = ROOT / "runs"


# ---------------------------------------------------------------------------------- arguments
def parser(doc: str | None, parts: dict[str, str]) -> tuple[argparse.ArgumentParser, dict]:
    """An ArgumentParser with one subcommand per part ({name: one-line help}); returns the parser
    and {part: its subparser} so a script adds the part's own `--kebab-case` options."""
    main = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = main.add_subparsers(dest="part", required=True, metavar="PART")
    return main, {name: sub.add_parser(name, help=text, description=text) for name, text in parts.items()}


def add_run_options(p: argparse.ArgumentParser, label: bool = True) -> None:
    """The options of a part that trains one config: --label, --config, --runs-dir, --override."""
    if label:
        p.add_argument("--label", required=True, help="the row's key in the JSON")
        p.add_argument("--config", required=True, help="a shipped config, e.g. configs/<task>/<exp>.yaml")
    p.add_argument("--runs-dir", type=Path, default=None, help="run folders (default runs/bench_<task>)")
    p.add_argument(
        "--override",
        nargs=argparse.REMAINDER,
        default=[],
        help="`ctdl fit` options, e.g. --override --trainer.max_steps 100 (must come last)",
    )


# ------------------------------------------------------------------------------ fit and test
@dataclass
class Run:
    """One `ctdl fit`: its CLI (model, datamodule, trainer), folder, best (else last) checkpoint,
    optimizer steps, seconds inside training batches, wall seconds of the whole fit and the
    validations the clock saw."""

    cli: object
    run_dir: str
    checkpoint: str | None
    steps: int
    train_s: float
    wall_s: float
    validations: list[dict] = field(default_factory=list)
    common: list[str] = field(default_factory=list)

    def row(self) -> dict:
        """The timing columns every training row carries."""
        return {
            "steps": self.steps,
            "train_s": round(self.train_s, 1),
            "fit_wall_s": round(self.wall_s, 1),
            "s_per_1000_steps": round(1000 * self.train_s / max(self.steps, 1), 1),
            "checkpoint": self.checkpoint,
        }


def train_clock():
    """A Lightning callback (built lazily, so importing the harness needs no Lightning) that sums
    the seconds inside training batches and records, at every validation, the step, the training
    and wall seconds so far and every `val/*` metric."""
    from lightning.pytorch.callbacks import Callback

    class TrainClock(Callback):
        def __init__(self) -> None:
            self.train_s, self.validations, self.batches = 0.0, [], []
            self._batch = self._start = 0.0

        def on_train_start(self, trainer, pl_module) -> None:
            self._start = time.perf_counter()

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            self._batch = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            seconds = time.perf_counter() - self._batch
            self.train_s += seconds
            self.batches.append((trainer.global_step, seconds))

        def on_validation_end(self, trainer, pl_module) -> None:
            if trainer.sanity_checking:
                return
            metrics = {
                k.replace("/", "_"): round(float(v), 6)
                for k, v in trainer.callback_metrics.items()
                if k.startswith("val/") and v.numel() == 1
            }
            if metrics:
                self.validations.append(
                    {
                        "step": trainer.global_step,
                        "train_s": round(self.train_s, 2),
                        "wall_s": round(time.perf_counter() - self._start, 2),
                        **metrics,
                    }
                )

    return TrainClock()


def fit(
    config: str | Path,
    label: str,
    overrides: list[str] = (),
    runs_dir: str | Path | None = None,
    callbacks: list = (),
) -> Run:
    """`ctdl fit --config CONFIG OVERRIDES` in runs_dir/<label>/ with a train clock (and any extra
    callbacks); the best checkpoint by the config's monitor, else last.ckpt."""
    from ctdl.cli import run_cli

    runs_dir = Path(runs_dir) if runs_dir is not None else RUNS / "bench"
    common = [
        "--config",
        str(config),
        *overrides,
        "--runs_dir",
        str(runs_dir),
        "--run_name",
        label,
        "--trainer.enable_progress_bar",
        "false",
    ]
    cli = run_cli(common, run=False)
    clock = train_clock()
    cli.trainer.callbacks.extend([clock, *callbacks])
    t0 = time.perf_counter()
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    wall = time.perf_counter() - t0
    return Run(
        cli=cli,
        run_dir=str(cli.trainer.log_dir),
        checkpoint=best_checkpoint(cli.trainer),
        steps=cli.trainer.global_step,
        train_s=clock.train_s,
        wall_s=wall,
        validations=clock.validations,
        common=common,
    )


def best_checkpoint(trainer) -> str | None:
    """The checkpoint callback's best model, else its last.ckpt, else None."""
    ckpt = trainer.checkpoint_callback
    if ckpt is None:
        return None
    if ckpt.best_model_path:
        return ckpt.best_model_path
    last = Path(ckpt.dirpath or "", "last.ckpt")
    return str(last) if ckpt.dirpath and last.is_file() else None


def test(
    run: Run | None = None,
    *,
    common: list[str] | None = None,
    checkpoint: str | None = None,
    init_from: str | None = None,
) -> dict:
    """`ctdl test` on a run's best checkpoint (or on `checkpoint` with the `common` options of an
    earlier fit; or, with `init_from`, the model the `common` options build with that checkpoint's
    weights: its hyper-parameters come from the options, so the data may differ from training's, e.g.
    other start points); returns {metric: value} for every logged `test/<metric>`."""
    from ctdl.cli import run_cli

    common = run.common if run is not None else common
    checkpoint = run.checkpoint if run is not None else checkpoint
    if init_from is not None:
        args = ["test", *common, "--init_from", init_from]
    elif checkpoint is None:
        raise SystemExit("the run wrote no checkpoint to test; check its checkpoint settings")
    else:
        args = ["test", *common, "--ckpt_path", checkpoint]
    cli = run_cli(args)
    return {
        k.split("/", 1)[1]: float(v)
        for k, v in cli.trainer.callback_metrics.items()
        if k.startswith("test/") and v.numel() == 1
    }


def curve(run_dir: str | Path, keys: list[str]) -> list[dict]:
    """The rows of <run_dir>/metrics.csv that log any of `keys`, as {"step", key: float, ...}
    (a key the row does not log is left out)."""
    path = Path(run_dir) / "metrics.csv"
    if not path.is_file():
        raise SystemExit(f"no metrics.csv in {run_dir}: was the run logged with the CSV logger?")
    out = []
    with path.open() as fh:
        for row in csv.DictReader(fh):
            values = {k: float(row[k]) for k in keys if row.get(k) not in (None, "")}
            if values:
                out.append({"step": int(row["step"]), **values})
    return out


# ----------------------------------------------------------------------------------- results
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


def result_path(task: str, part: str) -> Path:
    return OUT / f"{task}_{part}.json"


def load(task: str, part: str) -> dict:
    """benchmarks/<task>_<part>.json, or {} when the part has not run."""
    path = result_path(task, part)
    return json.loads(path.read_text()) if path.is_file() else {}


def save(task: str, part: str, result: dict) -> None:
    """Write benchmarks/<task>_<part>.json (with the environment) and print it."""
    OUT.mkdir(exist_ok=True)
    result = {"part": part, "env": environment(), **result}
    result_path(task, part).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2), flush=True)


def upsert(
    task: str, part: str, rows: list[dict], key: str | tuple[str, ...] = "label", **meta
) -> list[dict]:
    """Put `rows` into benchmarks/<task>_<part>.json: a stored row that agrees with a new one on
    `key` (a column, or a tuple of columns) is replaced, the others kept in order, new ones
    appended. The file is read now, so parallel runs of one part keep each other's rows. `meta`
    (target, setup, ...) replaces the file's entries of the same name. Returns every row."""
    columns = (key,) if isinstance(key, str) else tuple(key)

    def of(row: dict) -> tuple:
        return tuple(row.get(c) for c in columns)

    old = load(task, part)
    new_keys = {of(r) for r in rows}
    merged = [r for r in old.get("rows", []) if of(r) not in new_keys] + list(rows)
    kept = {k: v for k, v in old.items() if k not in ("part", "env", "rows", *meta)}
    save(task, part, {**kept, **meta, "rows": merged})
    return merged


def cell(v) -> str:
    """A table cell: floats below 1 with 4 decimals, tiny ones in scientific notation."""
    if isinstance(v, float) and 0 < abs(v) < 1e-3:
        return f"{v:.2e}"
    return f"{v:.4f}" if isinstance(v, float) and abs(v) < 1 else str(v)


def table(rows: list[dict], drop: tuple[str, ...] = ("run_dir", "checkpoint")) -> str:
    """A markdown table over the union of the rows' scalar keys (nested values such as training
    curves stay in the JSON; a missing value shows as "-")."""
    keys = [
        k
        for k in dict.fromkeys(k for r in rows for k, v in r.items() if not isinstance(v, dict | list))
        if k not in drop
    ]
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(cell(r.get(k, "-")) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def environment_line(env: dict) -> str:
    return (
        f"{env['cpu']}, {env['cores']} cores, {env['torch_threads']} torch threads, "
        f"GPU: {env['cuda'] or 'none'}; Python {env['python']}, torch {env['torch']}, "
        f"lightning {env['lightning']}, torchdiffeq {env['torchdiffeq']}"
    )


def part_markdown(part: dict, heading: str = "##") -> list[str]:
    """One part's section: heading, environment, target and setup, its tables."""
    md = [f"{heading} {part['part']}", "", environment_line(part["env"]), ""]
    for key in ("target", "setup"):
        if key in part:
            md += [f"{key.capitalize()}: {part[key]}", ""]
    for key in ("summary", "rows", "runs"):
        if key in part:
            md += [table(part[key]), ""]
    return md


def report(task: str, title: str) -> str:
    """Merge benchmarks/<task>_*.json into benchmarks/<task>.md, one section a part."""
    md = [f"# {title} (scripts/bench_{task}.py)", ""]
    for path in sorted(OUT.glob(f"{task}_*.json")):
        md += part_markdown(json.loads(path.read_text()))
    text = "\n".join(md)
    (OUT / f"{task}.md").write_text(text)
    print(text)
    return text


# ------------------------------------------------------------------------ generated doc tables
TABLE_BLOCK = re.compile(r"(<!-- table (?P<spec>[^>]*?) -->\n)(?P<body>.*?)(<!-- /table -->)", re.S)


def table_from_spec(spec: str) -> str:
    """The table a docs marker asks for: `<task>_<part>.json [key=rows] [columns=a,b,c]
    [where=column:value,...]` (key: the list in the JSON, default rows; columns: which, in order;
    where: keep only the rows whose column equals one of the values)."""
    name, *options = spec.split()
    opts = dict(o.split("=", 1) for o in options)
    path = OUT / name
    if not path.is_file():
        raise SystemExit(f"a docs table names {path}, which does not exist; run its bench part first")
    rows = json.loads(path.read_text())[opts.get("key", "rows")]
    if "where" in opts:
        column, _, values = opts["where"].partition(":")
        rows = [r for r in rows if str(r.get(column)) in values.split("|")]
    if "columns" in opts:
        cols = opts["columns"].split(",")
        rows = [{c: r.get(c, "-") for c in cols} for r in rows]
    return table(rows, drop=()) + "\n"


def render_docs(check: bool = False) -> list[Path]:
    """Regenerate every `<!-- table ... -->` block of docs/*.md from benchmarks/; with check, change
    nothing and return the pages whose tables are out of date."""
    stale = []
    for page in sorted((ROOT / "docs").glob("*.md")):
        text = page.read_text()
        new = TABLE_BLOCK.sub(lambda m: m.group(1) + table_from_spec(m.group("spec")) + m.group(4), text)
        if new != text:
            stale.append(page)
            if not check:
                page.write_text(new)
    return stale


if __name__ == "__main__":
    cli = argparse.ArgumentParser(description="Regenerate the benchmark tables in docs/*.md.")
    cli.add_argument("--check", action="store_true", help="only list pages whose tables are stale")
    stale = render_docs(check=cli.parse_args().check)
    print(
        "\n".join(f"{'stale' if cli.parse_args().check else 'updated'}: {p}" for p in stale) or "up to date"
    )
