#!/usr/bin/env bash
# Install whatever is missing (tools/setup.sh, idempotent), lint (ruff: pyflakes, pycodestyle, import order;
# settings in pyproject.toml) and run the test suite.
# Extra arguments go to pytest, e.g.  bash tools/run_tests.sh -k metrics
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$REPO/tools/setup.sh"
# shellcheck disable=SC1091
. "${DRIVEPI_VENV:-$REPO/.venv}/bin/activate"
cd "$REPO"
ruff check .
exec python -m pytest tests -q "$@"
