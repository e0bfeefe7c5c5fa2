#!/usr/bin/env bash
# Create or refresh the kit's environment: Debian packages from apt.txt, a virtualenv in .venv with
# torch==2.13.0 (CPU) first and every other Python package pinned in requirements.lock, then the
# torchaudio fix and an import check that fails loudly. Re-running is cheap: each step is skipped
# when its inputs have not changed.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}

# 1. Debian packages (ffmpeg for musdb/stempeg, fluidsynth + soundfonts + espeak-ng for the song
#    generator, postgresql for the distributed tuning test).
missing=$(for p in $(grep -v '^#' apt.txt); do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || echo "$p"; done)
if [ -n "$missing" ]; then
  echo "[setup] installing Debian packages: $missing"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

# 2. The virtualenv, refreshed whenever requirements.lock changes.
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
stamp="$VENV/.stemblend-stamp"
want=$(cat requirements.lock scripts/setup.sh | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[setup] installing Python packages into $VENV (torch first, CPU build)"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  # torch first and alone: anything that asks for torch later finds 2.13.0 and pulls no CUDA wheels.
  "$VENV/bin/python" -m pip install -q torch==2.13.0
  # Every other package fully pinned and installed without resolution: nussl 1.1.9 declares
  # soxbindings (does not build here) and torchaudio has no CPU wheel for torch 2.13.
  "$VENV/bin/python" -m pip install -q --no-deps -r requirements.lock
  # torchaudio: the wheel's compiled libraries do not match our torch; without them, its
  # pure-Python parts (what openunmix and demucs import) load.
  site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  rm -f "$site"/torchaudio/lib/*.so
  echo "$want" > "$stamp"
fi

# 3. Fail loudly if any library still does not import.
"$VENV/bin/python" -m core.compat
