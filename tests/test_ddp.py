"""One task config per task trains on two CPU processes (DDP over gloo) through `python -m ctdl`."""

import os
import subprocess
import sys

import pytest

from .helpers import SMALL, metrics_rows

# task -> (run folder under runs/, options beyond the task's small run)
RUNS = {
    # 500 samples, batch 128, 2 processes: 2 optimizer steps per epoch on each process
    "odenet": ("odenet/peaks", ["--trainer.max_epochs", "1"]),
    "sbi": ("sbi/lotka_volterra", ["--trainer.max_steps", "4"]),
    "soc": ("soc/lqr", ["--trainer.max_steps", "4"]),
    "pde_control": ("pde_control/direct", ["--trainer.max_steps", "2"]),
    "diffusion": ("diffusion/gaussian_fields", ["--model.schedule_steps", "[1]", "--trainer.max_steps", "2"]),
}
LAST_STEP = {"odenet": 1, "sbi": 4, "soc": 4, "pde_control": 2, "diffusion": 2}


@pytest.mark.parametrize(
    "task", [pytest.param(t, marks=[] if t == "odenet" else pytest.mark.slow) for t in RUNS]
)
def test_two_cpu_processes(task, tmp_path):
    folder, extra = RUNS[task]
    env = {k: v for k, v in os.environ.items() if k not in ("LOCAL_RANK", "WORLD_SIZE", "RANK")}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "ctdl", "fit", *SMALL[task], *extra]
    cmd += ["--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu"]
    cmd += ["--trainer.enable_progress_bar", "false", "--runs_dir", str(tmp_path / "runs")]
    cmd += ["--data.cache_dir", str(tmp_path / "cache")] if task == "sbi" else []
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert "distributed_backend=gloo" in log and "All distributed processes registered" in log
    run_dir = tmp_path / "runs" / folder / "version_0"
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    steps = [int(r["step"]) for r in metrics_rows(run_dir)]
    assert max(steps) <= LAST_STEP[task] and max(steps) >= LAST_STEP[task] - 1, steps
    if task == "odenet":  # the two processes split the data: 2 steps per epoch, not 4
        assert max(steps) == 1
