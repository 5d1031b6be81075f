#!/usr/bin/env bash
# Make .venv with a Python 3.12 interpreter and install ctdl with all extras.
# Safe to re-run: the install is skipped when pyproject.toml and constraints.txt are unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."

find_python312() {
    local candidates=()
    [[ -n "${CTDL_PYTHON:-}" ]] && candidates+=("$CTDL_PYTHON")
    candidates+=(python3.12)
    if command -v pyenv >/dev/null 2>&1; then
        local root; root="$(pyenv root)"
        candidates+=("$root"/versions/3.12*/bin/python3.12)
    fi
    candidates+=("$HOME"/.pyenv/versions/3.12*/bin/python3.12 /usr/local/bin/python3.12 /usr/bin/python3.12)
    for py in "${candidates[@]}"; do
        if "$py" -c 'import sys; assert sys.version_info[:2] == (3, 12)' >/dev/null 2>&1; then
            command -v "$py" 2>/dev/null || echo "$py"
            return 0
        fi
    done
    return 1
}

if [[ -x .venv/bin/python ]] && ! .venv/bin/python -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
    echo "[setup] .venv is not Python 3.12; recreating it"
    rm -rf .venv
fi
if [[ ! -x .venv/bin/python ]]; then
    PY="$(find_python312)" || {
        echo "[setup] no Python 3.12 found. Install one (e.g. 'pyenv install 3.12') or set CTDL_PYTHON=/path/to/python3.12" >&2
        exit 1
    }
    echo "[setup] creating .venv with $PY"
    "$PY" -m venv .venv
fi

stamp=.venv/.ctdl-install-stamp
want="$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && .venv/bin/python -c 'import ctdl' 2>/dev/null; then
    echo "[setup] .venv is up to date"
else
    echo "[setup] installing ctdl[all] into .venv (first time: a few minutes)"
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -c constraints.txt -e '.[all]'
    echo "$want" > "$stamp"
fi
