#!/usr/bin/env bash
# Installs what the build needs from Debian packages. Idempotent: installs only what is missing.
set -euo pipefail

packages=(build-essential cmake ninja-build pkg-config git
          libcli11-dev nlohmann-json3-dev libfmt-dev doctest-dev
          libcurl4-openssl-dev libsqlite3-dev libpcre2-dev
          python3 python3-venv bubblewrap ccache)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all build dependencies present"
  exit 0
fi

echo "setup: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
