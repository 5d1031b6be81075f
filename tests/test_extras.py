"""Checks of the optional extras: DOLFINx (`ctdl[pde]`); sbibm's (`ctdl[sbi]`) are in test_sbi_evaluate.py.

Each test is skipped when its extra is not installed, so the core suite passes without them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import pytest

HAS_DOLFINX = importlib.util.find_spec("dolfinx") is not None


# --------------------------------------------------------------------------- DOLFINx


@pytest.mark.skipif(not HAS_DOLFINX, reason="needs the pde extra: pip install 'ctdl[pde]'")
def test_poisson_self_check_needs_no_environment_variable():
    """P1 on a uniform triangle mesh is nodally exact for u = 1 + x^2 + 2y^2.

    Run in a fresh interpreter whose environment has no LD_LIBRARY_PATH, the way a user
    starts Python, so the test proves that ctdl.fem alone makes DOLFINx importable.
    """
    env = dict(os.environ)
    env.pop("LD_LIBRARY_PATH", None)
    code = textwrap.dedent(
        """
        import json
        import ctdl.fem as fem
        errs = {n: fem.solve_poisson(n) for n in (8, 16)}
        lib = fem.find_libmpi()
        print(json.dumps({"errs": errs, "libmpi": None if lib is None else str(lib)}))
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"subprocess failed:\n{proc.stdout}\n{proc.stderr}"
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    errs = {int(k): v for k, v in out["errs"].items()}
    # Nodal exactness: round-off only. A wrong sign of f, a lost boundary condition or a
    # solver that did not run gives errors of order 0.1 to 1.
    assert errs[8] < 1e-10, errs
    assert errs[16] < 1e-10, errs


def test_import_dolfinx_missing_says_how_to_install(monkeypatch):
    """Without DOLFINx the error names the extra to install."""
    import ctdl.fem as fem

    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        if name == "dolfinx":
            return None
        return real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    for mod in ("dolfinx", "dolfinx.fem.petsc"):
        monkeypatch.delitem(sys.modules, mod, raising=False)
    with pytest.raises(ImportError, match=r"pip install 'ctdl\[pde\]'"):
        fem.import_dolfinx()


def test_solve_poisson_rejects_bad_n():
    import ctdl.fem as fem

    with pytest.raises(ValueError, match="positive integer"):
        fem.solve_poisson(0)
