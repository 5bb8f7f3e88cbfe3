#!/usr/bin/env bash
# Install haco_grasp and its dependencies into the current Python environment.
#   bash install.sh          runtime dependencies
#   bash install.sh --dev    plus the test tools (pytest, manifold3d, embreex, ruff; Debian's chromium as root)
# torch stays pinned to the CPU build 2.13.0 through every step (an unpinned resolution pulls a 6.7 GB CUDA stack).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
extra=""
[ "${1:-}" = "--dev" ] && extra="[dev]"

# open3d needs libusb at import time (Debian package libusb-1.0-0).
if ! ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0'; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get install -y -qq libusb-1.0-0 >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq libusb-1.0-0 >/dev/null; }
  else
    echo "install.sh: please install libusb-1.0-0 (e.g. sudo apt-get install libusb-1.0-0); open3d needs it" >&2
  fi
fi

# --dev: Debian's chromium lets tests/test_refine_generic.py screenshot the HTML report headless (the test skips
# without it; a failed install only warns).
if [ -n "$extra" ] && ! command -v chromium >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -qq chromium >/dev/null 2>&1 || { timeout 300 apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -qq chromium >/dev/null 2>&1; } \
    || echo "install.sh: chromium not installed; the headless report screenshot test will skip" >&2
fi

export PIP_CONSTRAINT="$here/constraints.txt"
export PIP_DISABLE_PIP_VERSION_CHECK=1
python -m pip install -q --root-user-action=ignore torch==2.13.0
python -m pip install -q --root-user-action=ignore -e "$here$extra"
command -v pyenv >/dev/null && pyenv rehash || true
python -c "import haco_grasp, torch; print('haco_grasp', haco_grasp.__version__, '| torch', torch.__version__)"
