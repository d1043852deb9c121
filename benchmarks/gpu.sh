#!/usr/bin/env bash
# evalkit's scoring on one GPU against TRL's DPOTrainer.evaluate() and a plain loop (benchmarks/gpu_bench.py),
# after the scoring parity and invariance tests on that GPU. Under 8 minutes on one H100/H200. `make perf-gpu`.
#
#   benchmarks/gpu.sh [gpu_bench.py options]     on a GPU machine; results under $OUT (else reports/gpu-bench)
#   benchmarks/gpu.sh --dry-run                  the same code on the CPU, tiny shapes, in seconds
#
# A machine without TRL, datasets or pydantic (and no package index) takes the wheels that
# benchmarks/gpu-wheels.sh downloaded into .whl/ beforehand: they are installed into /tmp/site, and a newer
# transformers from .whl/transformers/ is put in front of an older one, kept only if it imports there.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1

imports() { "$PYTHON" -c 'import trl, datasets, pydantic, httpx2, transformers, evalkit.scoring.score' 2>&1; }

if ! "$PYTHON" -c 'import trl, datasets, pydantic, httpx2' 2>/dev/null; then
  if ! ls .whl/*.whl >/dev/null 2>&1; then
    echo "TRL, datasets, pydantic or httpx2 is missing and .whl/ holds no wheels: run benchmarks/gpu-wheels.sh" \
      "where a package index is reachable, and carry .whl to this machine" >&2
    exit 2
  fi
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}

# A newer transformers than the machine's own, where one was carried (the image's is kept if it is as new).
carried=$(ls .whl/transformers/transformers-*.whl 2>/dev/null | head -1 || true)
if [ -n "$carried" ]; then
  want=$(basename "$carried" | cut -d- -f2)
  have=$("$PYTHON" -c 'import transformers; print(transformers.__version__)' 2>/dev/null || echo 0)
  if "$PYTHON" -c 'import sys; from packaging.version import Version as V; sys.exit(V(sys.argv[1]) <= V(sys.argv[2]))' \
    "$want" "$have"; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site-transformers \
      .whl/transformers/*.whl
    if PYTHONPATH=/tmp/site-transformers:$PYTHONPATH imports >/tmp/transformers-import.log; then
      export PYTHONPATH=/tmp/site-transformers:$PYTHONPATH
      echo "transformers $have -> $want (carried)"
    else
      echo "the carried transformers $want does not import here; keeping $have:" >&2
      tail -3 /tmp/transformers-import.log >&2
    fi
  fi
fi

if ! imports >/tmp/evalkit-import.log; then
  cat /tmp/evalkit-import.log >&2
  exit 2
fi
"$PYTHON" -c 'import torch, transformers, trl, datasets, pydantic, pyarrow, fsspec
print("python", __import__("platform").python_version(), "torch", torch.__version__, "cuda", torch.cuda.is_available(),
      "transformers", transformers.__version__, "trl", trl.__version__, "datasets", datasets.__version__,
      "pydantic", pydantic.VERSION, "pyarrow", pyarrow.__version__, "fsspec", fsspec.__version__)'
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

# The whole run stays under 8 minutes: the measuring budget inside is 300 s, tests and model builds come on top.
exec timeout 470 "$PYTHON" -m benchmarks.gpu_bench "$@"
