#!/usr/bin/env bash
# Runs lmd's whole test suite on a fresh Debian machine: installs what it needs first.
#   - Debian packages: exiftool (fixtures are checked against it), PostgreSQL (multi-worker
#     queue tests start a throwaway server on loopback), systemd (systemd-analyze verify),
#     chromium and chromium-driver (the review page's browser tests, via Selenium);
#   - a virtual environment in .venv with the CPU build of torch and lmd's test extra;
# then ruff and pytest. Extra arguments go to pytest (e.g. `bash tests/run.sh -k store`).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v exiftool >/dev/null 2>&1 || need+=(libimage-exiftool-perl)
compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || need+=(postgresql)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
# the review page is tested in a real browser: Debian's Chromium driven by its chromedriver
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
if [ ${#need[@]} -gt 0 ]; then
  as_root=(); [ "$(id -u)" -eq 0 ] || as_root=(sudo)
  "${as_root[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

# pip here warns once per package about this machine's extra index folders; keep real errors.
quiet() { "$@" 2>&1 | { grep -v '^WARNING: Location' || true; }; }
[ -x .venv/bin/python ] || python3 -m venv .venv
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  quiet .venv/bin/pip install -q torch==2.13.0
fi
quiet .venv/bin/pip install -q -e '.[test,faces]'

.venv/bin/ruff check .
export LMD_REQUIRE_POSTGRES="${LMD_REQUIRE_POSTGRES:-1}"
# the slowest tests are listed at the end, so the suite's time (kept under 6 minutes on
# 2 cores) has names attached when it grows
exec .venv/bin/python -m pytest -q -p no:cacheprovider --durations=15 "$@"
