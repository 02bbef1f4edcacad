#!/usr/bin/env bash
# The GPU checks in one run, for a CUDA machine (a few minutes): the gpu-marked tests (AMP on
# CUDA, the host-sync test under torch.cuda.set_sync_debug_mode("error"), ...), then the
# overhead of the Trainer over a raw loop on the ResNet-ish CNN and the small transformer in
# bf16, eager and compiled. PY names the interpreter (default: the repository's venv).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
"$PY" -m pytest -q -m gpu tests
MODELS=("ResNet-ish CNN" "small transformer")
"$PY" benchmarks/overhead.py --device cuda --precision bf16-mixed --iters 300 --rounds 5 \
    --progress off --models "${MODELS[@]}"
"$PY" benchmarks/overhead.py --device cuda --precision bf16-mixed --iters 300 --compile --rounds 1 \
    --progress off --models "${MODELS[@]}"
"$PY" benchmarks/overhead.py --device cuda --iters 2000 --rounds 5 --models "tiny MLP"
