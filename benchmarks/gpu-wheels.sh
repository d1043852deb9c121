#!/usr/bin/env bash
# Download, here, the wheels benchmarks/gpu.sh installs on a GPU machine that cannot reach a package index:
# what evalkit and its tests need beyond the machine's own image (torch with CUDA, transformers, peft,
# accelerate, pandas, scipy, rich, jinja2, matplotlib, pyarrow, ...). Python 3.12, x86-64 Linux, no
# dependencies resolved (each needed one is named): the versions this project is tested with.
#
#   benchmarks/gpu-wheels.sh            -> .whl/*.whl (always installed) and .whl/transformers/*.whl
#
# .whl/transformers/ holds a newer transformers with what it needs beyond an older image (huggingface-hub 2,
# kernels, ...): gpu.sh puts it in front of the image's own when that one is older and falls back to the image's
# if the newer one does not import there. Together they must stay under the 64 MiB a device call carries.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
DEST=${DEST:-.whl}

CORE=(
  trl==1.16.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19
  pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 typing-extensions==4.16.0
  httpx2==2.17.0 httpcore2==2.17.0 truststore==0.10.5
)
TRANSFORMERS=(
  transformers==5.25.0 huggingface-hub==2.4.0 kernels==0.19.1 tomlkit==0.14.0 regex==2026.12.2 click==8.5.1
)
PLATFORMS=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 \
  manylinux2014_x86_64 manylinux1_x86_64 manylinux_2_31_x86_64 manylinux_2_34_x86_64 manylinux_2_35_x86_64; do
  PLATFORMS+=(--platform "$p")
done

download() {  # download DIR SPEC...
  local dir=$1
  shift
  mkdir -p "$dir"
  "$PYTHON" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version 3.12 --implementation cp "${PLATFORMS[@]}" -d "$dir" "$@"
}

rm -rf "$DEST"
download "$DEST" "${CORE[@]}"
download "$DEST/transformers" "${TRANSFORMERS[@]}"
ls -1 "$DEST" "$DEST/transformers"
total=$(du -sb "$DEST" | cut -f1)
echo "wheels: $(find "$DEST" -name '*.whl' | wc -l) files, $((total / 1024 / 1024)) MiB ($total bytes) in $DEST"
if [ "$total" -gt $((60 * 1024 * 1024)) ]; then
  echo "over 60 MiB: a device call carries 64 MiB with the working tree" >&2
  exit 1
fi
