#!/usr/bin/env bash
# Install imc-sim and its dependencies into the current Python (3.11).
# torch is pinned to the CPU 2.13.0 build; aihwkit 1.1.0 pulls in a torchvision that does not
# import beside it and breaks `import transformers`, and aihwkit's core never needs it: remove it.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q -e ".[dev]"
python -m pip uninstall -y -q torchvision 2>/dev/null || true
