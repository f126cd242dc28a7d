#!/usr/bin/env bash
# Creates the project-local Python environment (.venv/) used only by fixture and reference scripts
# (the C++ tests never need Python). Usage: scripts/python-env.sh [requirements-name ...]
# e.g. scripts/python-env.sh fixtures torch  -> installs scripts/requirements-fixtures.txt, ...-torch.txt
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
fi
for name in "$@"; do
  "$venv/bin/pip" install -q -r "$root/scripts/requirements-$name.txt"
done
echo "$venv/bin/python"
