#!/usr/bin/env bash
# Installs the Debian 12 packages imgpack needs that are not there yet.
#   scripts/install-deps.sh          what building and packing need
#   scripts/install-deps.sh --test   that plus what the test suite needs
set -euo pipefail

packages=(cmake make gcc pkg-config liblmdb-dev libjpeg62-turbo-dev
          libpng-dev libwebp-dev libsqlite3-dev sqlite3 nettle-dev zlib1g-dev
          libarchive-dev libdeflate-dev)
if [[ "${1:-}" == "--test" ]]; then
    # Debian's Python packages are the references the tests compare with:
    # Pillow and torchvision for pixels, python-lmdb for the file format.
    packages+=(python3 python3-numpy python3-pil python3-lmdb python3-pytest
               python3-torch python3-torchvision clang libclang-rt-14-dev
               openmpi-bin)
    # The install tests: pip into a venv offline (--no-build-isolation
    # builds with Debian's setuptools and wheel), the .deb's Depends
    # (dpkg-shlibdeps), the man page's check (groff).
    packages+=(python3-venv python3-setuptools python3-wheel dpkg-dev
               groff-base)
fi

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
        missing+=("$p")
done
if ((${#missing[@]})); then
    echo "installing: ${missing[*]}"
    sudo=""
    [[ $(id -u) -ne 0 ]] && sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi
