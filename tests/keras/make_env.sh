#!/usr/bin/env bash
# Build the Keras test environment: a venv of its own (never rnnc's) with Keras 3 on the
# torch backend, torch being the local CPU build (torch==2.13.0). tests/keras/ finds it at
# ${RNNC_KERAS_ENV:-$HOME/.cache/rnnc-keras-env} and skips, naming this script, without it.
# Idempotent: an environment that already imports keras, h5py and torch is left as it is.
#   bash tests/keras/make_env.sh            # build (or check) the default path
#   RNNC_KERAS_ENV=/path bash tests/keras/make_env.sh
set -euo pipefail
env_dir="${RNNC_KERAS_ENV:-$HOME/.cache/rnnc-keras-env}"
python="${PYTHON:-python3}"
check='import os; os.environ["KERAS_BACKEND"]="torch"; import keras, h5py, torch, numpy; assert keras.__version__.startswith("3."), keras.__version__; assert keras.backend.backend() == "torch"'
if [ -x "$env_dir/bin/python" ] && "$env_dir/bin/python" -c "$check" >/dev/null 2>&1; then
  echo "keras env: ready at $env_dir"
  exit 0
fi
mkdir -p "$(dirname "$env_dir")"
"$python" -m venv "$env_dir"
"$env_dir/bin/pip" install --quiet --upgrade pip
# torch==2.13.0 is the CPU build on this machine's disk; an unpinned torch pulls CUDA (GBs).
"$env_dir/bin/pip" install --quiet "torch==2.13.0" "keras>=3,<4" h5py numpy
"$env_dir/bin/python" -c "$check"
echo "keras env: built at $env_dir"
