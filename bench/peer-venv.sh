#!/usr/bin/env bash
# bench/peer-venv.sh - print the python of the peer's virtual environment:
# current PyTorch and MONAI from PyPI, the stack a user would otherwise pick
# (Debian's python3-torch 1.13 is only a second column). Made on first use
# (several minutes: torch pulls its CUDA libraries) at DLT_PEER_VENV
# (default ~/.cache/dlt/peer-venv, outside the repository, kept across
# `make clean`). Exit 1 with a message on stderr where it cannot be made
# (no python3 -m venv, no route to PyPI).
set -eu
VENV=${DLT_PEER_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/dlt/peer-venv}
PY=$VENV/bin/python
if ! "$PY" -c 'import torch, monai' 2>/dev/null; then
    echo "# bench: making the peer's venv at $VENV (torch and monai from PyPI; minutes)" >&2
    mkdir -p "$(dirname "$VENV")"
    if ! { [ -x "$PY" ] || python3 -m venv "$VENV" >&2; } ||
       ! "$PY" -m pip install -q torch monai >&2; then
        echo "# bench: could not make the peer's venv at $VENV" >&2
        exit 1
    fi
fi
echo "$PY"
