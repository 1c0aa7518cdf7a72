#!/usr/bin/env bash
# Everything a fresh machine lacks to run and test tidal; each step is skipped when already done.
#   system packages: git, openssh-server (the test SSH Git server), gnupg
#   .venv with tidal and its dev tools, and the kustomize engine (pykustomize, see below)
#   the test control plane, compiled from pinned Go modules into ~/.cache/tidal-testenv
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v git >/dev/null || need+=(git)
[ -x /usr/lib/git-core/git-http-backend ] || need+=(git)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v gpg >/dev/null || need+=(gnupg)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: please install: ${need[*]} (needs root)" >&2
    exit 1
  fi
  echo "setup: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# pykustomize (Go kustomize in-process, see docs/decisions.md) declares Requires-Python >=3.14
# although its wheel is pure cffi and runs on 3.11; it is installed on its own, without its
# dependency resolution, so the override cannot pull anything else past its Python bounds.
PYKUSTOMIZE=pykustomize==0.1.4
# Re-install only when the declared dependencies changed.
stamp=.venv/.tidal-deps
want=$( (cat pyproject.toml; echo "$PYKUSTOMIZE") | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev,helm]'
  .venv/bin/python -m pip install -q --no-deps --ignore-requires-python "$PYKUSTOMIZE"
  echo "$want" > "$stamp"
fi

if ! command -v go >/dev/null; then
  echo "setup: the Go toolchain is needed to build the test control plane" >&2
  exit 1
fi
.venv/bin/python -m testenv build
# The OCI registry the OCIRepository tests push to (cached; a no-op once built).
.venv/bin/python -m testenv.registry
