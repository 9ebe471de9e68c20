#!/usr/bin/env bash
# Retakes the web console's screenshots in docs/screenshots (shown in the README): runs the
# browser tests, which save each page downscaled to a palette PNG when CONSOLE_SCREENSHOTS is set.
set -euo pipefail
cd "$(dirname "$0")/.."
make --no-print-directory venv
CONSOLE_SCREENSHOTS="$PWD/docs/screenshots" .venv/bin/python -m pytest -q tests/browser "$@"
ls -l docs/screenshots
