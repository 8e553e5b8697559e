#!/usr/bin/env bash
# Set up mnistbench: a virtual environment in .venv with the pinned packages of
# envs/requirements.lock (a matching torch/torchvision pair from PyPI) and the package itself.
#   bash envs/setup.sh            # then: source .venv/bin/activate
# PYTHON=python3.12 bash envs/setup.sh picks another interpreter (3.11 or newer).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
"$PYTHON" - <<'PY' || { echo "mnistbench needs Python 3.11 or newer (set PYTHON=...)" >&2; exit 1; }
import sys
sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# Exact pins: a local or newer torch build (e.g. a CPU-only wheel without a matching torchvision)
# is never picked up in place of the locked pair.
.venv/bin/python -m pip install -q -r envs/requirements.lock
.venv/bin/python -m pip install -q --no-deps -e .
.venv/bin/python - <<'PY'
import torch, torchvision, lightning
from torchvision.ops import nms  # fails when torch and torchvision do not match
nms(torch.zeros(1, 4), torch.zeros(1), 0.5)
print(f"mnistbench environment ready: torch {torch.__version__}, torchvision "
      f"{torchvision.__version__}, lightning {lightning.__version__}, "
      f"CUDA {'yes' if torch.cuda.is_available() else 'no'}")
PY
