# Sourced by scripts/*: create .venv and install keel with its dev extras when needed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
VENV="${KEEL_VENV:-$ROOT/.venv}"
STAMP="$VENV/.keel-installed"
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
# Reinstall when the dependency list changed since the last install.
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ]; then
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    # keel was installed as the distribution "keel" before it became "keel-framework":
    # drop that stale editable install so only one distribution claims the package.
    if "$VENV/bin/python" -m pip show --quiet keel >/dev/null 2>&1; then
        "$VENV/bin/python" -m pip uninstall --quiet --disable-pip-version-check -y keel
    fi
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[dev]"
    touch "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
