"""Import DOLFINx (FEniCSx) without any environment variable.

The PyPI wheel ``dolfinx-solver-real`` links its compiled modules (``dolfinx.cpp``,
``petsc4py.PETSc``) against ``libmpi.so.12``, which the ``mpich`` wheel installs into
``<sys.prefix>/lib``. The dynamic loader does not search that folder, so a plain
``import dolfinx`` fails with

    ImportError: libmpi.so.12: cannot open shared object file: No such file or directory

unless LD_LIBRARY_PATH names it. :func:`import_dolfinx` finds that library and loads it
once with ``RTLD_GLOBAL``; every later ``DT_NEEDED`` request for ``libmpi.so.12`` then
resolves to the copy already in the process (by its soname), and mpi4py, which first
looks for MPI symbols in the global namespace, uses the same copy, so the process holds
exactly one MPI runtime. It then imports ``dolfinx_solver`` (the wheel's guard, which
imports ``mpi4py.MPI`` ahead of the bindings and refuses a foreign PETSc) and DOLFINx.

h5py, where installed, is imported first: its wheel bundles another HDF5, which fails to load after
DOLFINx's but not before it.

This module imports no Lightning; the PDE control task (`ctdl.pde_control.problem`) and the
finite-element HJB reference of the control task use it.
"""

from __future__ import annotations

import ctypes
import importlib
import importlib.metadata
import importlib.util
import site
import sys
from pathlib import Path
from types import ModuleType

__all__ = ["find_libmpi", "import_dolfinx"]

INSTALL_HINT = (
    "DOLFINx (FEniCSx) is not installed. Install the PDE extra with "
    "`pip install 'ctdl[pde]'` (it brings the dolfinx-solver-real wheel, "
    "mpi4py and mpich), or run scripts/setup.sh."
)

# The MPICH ABI soname the wheel's libraries ask for, then any other libmpi.so.*.
_SONAMES = ("libmpi.so.12",)

_libmpi: ctypes.CDLL | None = None
_libmpi_path: Path | None = None


def _is_elf(path: Path) -> bool:
    """True when ``path`` is a shared object, not a linker script such as libmpi.so."""
    try:
        with path.open("rb") as fh:
            return fh.read(4) == b"\x7fELF"
    except OSError:
        return False


def _candidate_dirs() -> list[Path]:
    """Folders that may hold the mpich wheel's libmpi, most specific first."""
    dirs: list[Path] = []
    # Exactly where pip put the files of the mpich wheel (prefix, --user or --target).
    try:
        files = importlib.metadata.files("mpich") or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for f in files:
        if f.name.startswith("libmpi.so"):
            dirs.append(Path(f.locate()).resolve().parent)
    # The environment's own lib/ folder, where the wheel installs it today.
    for prefix in (sys.prefix, sys.exec_prefix):
        dirs.append(Path(prefix) / "lib")
    # Wheels that keep their libraries inside site-packages.
    try:
        site_dirs = [*site.getsitepackages(), site.getusersitepackages()]
    except AttributeError:  # pragma: no cover - some embedded interpreters lack these
        site_dirs = []
    for sp in site_dirs:
        for sub in ("mpich/lib", "mpich", "mpi4py/lib", "mpi4py"):
            dirs.append(Path(sp) / sub)
    seen: set[Path] = set()
    out = []
    for d in dirs:
        if d not in seen and d.is_dir():
            seen.add(d)
            out.append(d)
    return out


def find_libmpi() -> Path | None:
    """Path of the wheel-installed MPICH ``libmpi.so.12`` (or another libmpi.so.N), or None."""
    for d in _candidate_dirs():
        for name in _SONAMES:
            p = d / name
            if p.is_file() and _is_elf(p):
                return p
        for p in sorted(d.glob("libmpi.so.*")):
            if p.is_file() and _is_elf(p):
                return p
    return None


def _preload_libmpi() -> Path | None:
    """Load libmpi once with RTLD_GLOBAL so later dlopen calls resolve to it."""
    global _libmpi, _libmpi_path
    if _libmpi is not None:
        return _libmpi_path
    path = find_libmpi()
    if path is None:
        # Nothing to preload: libmpi may be on the loader's path already (system MPI,
        # LD_LIBRARY_PATH, conda). The import below reports it if it is not.
        return None
    _libmpi = ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
    _libmpi_path = path
    return path


def import_dolfinx() -> ModuleType:
    """Import and return the ``dolfinx`` module, preloading the wheel's libmpi first.

    Also imports ``dolfinx.fem.petsc`` so that ``LinearProblem`` is ready to use.

    Raises:
        ImportError: DOLFINx is not installed (the message says how to install the
            ``pde`` extra), or it is installed but still cannot be loaded (the message
            names the libmpi that was preloaded, if any, and the original error).
    """
    if "dolfinx" in sys.modules and "dolfinx.fem.petsc" in sys.modules:
        return sys.modules["dolfinx"]
    if importlib.util.find_spec("dolfinx") is None:
        raise ImportError(INSTALL_HINT)
    if importlib.util.find_spec("h5py") is not None:
        # h5py's wheel bundles its own HDF5; loaded after DOLFINx's HDF5 it fails at import
        # ("Not a datatype"), loaded first both work (the tabular datamodules read HDF5 files)
        importlib.import_module("h5py")
    path = _preload_libmpi()
    try:
        if importlib.util.find_spec("dolfinx_solver") is not None:
            # The wheel's own guard: orders mpi4py.MPI first, refuses a foreign PETSc.
            importlib.import_module("dolfinx_solver")
        dolfinx = importlib.import_module("dolfinx")
        importlib.import_module("dolfinx.fem.petsc")
    except ImportError as err:
        where = f"preloaded {path}" if path else "found no libmpi.so.* to preload"
        raise ImportError(
            f"DOLFINx is installed but could not be imported ({where}): {err}. "
            "Reinstall the PDE extra with `pip install --force-reinstall 'ctdl[pde]'` "
            "or run scripts/setup.sh."
        ) from err
    return dolfinx
