#!/usr/bin/env bash
# `make run`: a local control plane (reused when already up), tidal installed into it, and the
# controller running in the foreground against it. Ctrl-C stops the controller; the plane keeps
# running until `make down`.
set -euo pipefail
cd "$(dirname "$0")/.."
export KUBECONFIG="$PWD/.testenv/kubeconfig"
if ! .venv/bin/python -m testenv status | grep -q "/readyz.*: ok"; then
  .venv/bin/python -m testenv up
fi
.venv/bin/tidal version
.venv/bin/tidal install --timeout 2m
cat <<MSG

tidal's controller now runs in the foreground against the test plane (KUBECONFIG=$KUBECONFIG).
In another shell, point a GitRepository at any Git server reachable from this machine, e.g.
  .venv/bin/tidal create source git app --url https://host/org/repo --branch main
and watch it with: .venv/bin/tidal get sources git -A

MSG
exec .venv/bin/tidal controller --storage-path .tidal/data --storage-addr 127.0.0.1:9090 \
  --metrics-addr 127.0.0.1:8080 --health-addr 127.0.0.1:9440 --log-encoding console
