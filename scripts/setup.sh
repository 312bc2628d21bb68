#!/usr/bin/env bash
# Install imc-sim with its test tools into the current Python (3.11), editable.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q -e ".[dev]"
