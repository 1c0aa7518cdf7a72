#!/usr/bin/env bash
# `make demo`: from a fresh clone to a cluster that follows Git, in one command.
#
#   1. a Kubernetes control plane: the local test plane (reused when up, started otherwise),
#      or any cluster with --kubeconfig;
#   2. a Git server on 127.0.0.1 serving a repository made from examples/demo/;
#   3. tidal's controller, in the background (the plane's nodes are simulated, so the
#      Deployment that `bootstrap` installs never really runs: this process does its work);
#   4. `tidal bootstrap git` against that repository, which waits until the cluster is in sync;
#   5. what is in the cluster, a working copy to change, and how to stop.
#
# Options:
#   --once              exit once the cluster is in sync (CI; stops what the demo started)
#   --namespace NS      namespace to bootstrap (default flux-system)
#   --kubeconfig FILE   use this cluster; nothing is started or stopped for it
#   --plane-dir DIR     state directory of the local plane (default .testenv)
#   --state-dir DIR     where the demo keeps its repository, logs and working copy
#                       (default .tidal/demo)
#
# The plane is never stopped unless this script started it for a --once run; `make down`
# stops it. Ctrl-C stops the controller and the Git server.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

once=0
namespace=flux-system
kubeconfig=""
plane_dir=.testenv
state_dir=.tidal/demo
while [ $# -gt 0 ]; do
  case "$1" in
    --once) once=1 ;;
    --namespace|-n) namespace=$2; shift ;;
    --kubeconfig) kubeconfig=$2; shift ;;
    --plane-dir) plane_dir=$2; shift ;;
    --state-dir) state_dir=$2; shift ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo: unknown option $1 (see $0 --help)" >&2; exit 2 ;;
  esac
  shift
done

# TIDAL_PYTHON: the interpreter with tidal installed (the tests pass theirs).
PY=${TIDAL_PYTHON:-$ROOT/.venv/bin/python}
if ! "$PY" -c 'import tidal' 2>/dev/null; then
  echo "demo: tidal is not installed yet; run \`make setup\` (or \`make demo\`) first" >&2
  exit 1
fi
# Background jobs run the interpreter itself (not a shell function), so the PID the script
# keeps, and stops, is tidal's own.
tidal_cmd=("$PY" -m tidal)
tidal() { "${tidal_cmd[@]}" "$@"; }
# How the commands printed for the user call tidal.
TIDAL=$ROOT/.venv/bin/tidal
[ -x "$TIDAL" ] || TIDAL="$PY -m tidal"
mkdir -p "$state_dir"
state_dir=$(cd "$state_dir" && pwd)

pids=()
started_plane=""
cleanup() {
  local pid
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if [ -n "$started_plane" ] && [ "$once" = 1 ]; then
    "$PY" -m testenv down --dir "$started_plane" >/dev/null || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Long steps run as jobs the script waits for: bash runs its traps (Ctrl-C, a TERM) at once
# during `wait`, but only after a foreground command has finished.
run_job() {
  "$@" &
  local pid=$!
  pids+=("$pid")
  wait "$pid"
}

if [ -t 1 ]; then
  step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
else
  step() { printf '\n== %s\n' "$*"; }
fi

# -- 1. the cluster ------------------------------------------------------------------------------
if [ -n "$kubeconfig" ]; then
  step "Using the cluster of $kubeconfig"
  export KUBECONFIG=$(cd "$(dirname "$kubeconfig")" && pwd)/$(basename "$kubeconfig")
else
  mkdir -p "$plane_dir"
  plane_dir=$(cd "$plane_dir" && pwd)
  if "$PY" -m testenv status --dir "$plane_dir" | grep -q "/readyz.*: ok"; then
    step "Reusing the control plane in $plane_dir"
  else
    step "Starting a local control plane in $plane_dir (the first time builds it: minutes)"
    started_plane=$plane_dir
    run_job "$PY" -m testenv up --dir "$plane_dir" >/dev/null
  fi
  export KUBECONFIG=$plane_dir/kubeconfig
fi

# -- 2. the Git server ---------------------------------------------------------------------------
step "Serving the example repository (examples/demo) over Git HTTP"
info=$state_dir/git-server.json
rm -f "$info"
"$PY" -m testenv git-serve --dir "$state_dir" --seed "$ROOT/examples/demo" --name demo \
  >"$state_dir/git-server.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  [ -s "$info" ] && break
  if ! kill -0 "${pids[-1]}" 2>/dev/null; then
    echo "demo: the Git server did not start:" >&2
    cat "$state_dir/git-server.log" >&2
    exit 1
  fi
  sleep 0.1
done
[ -s "$info" ] || { echo "demo: the Git server did not start in time" >&2; exit 1; }
field() { "$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$info" "$1"; }
url=$(field url)
username=$(field username)
echo "repository: $url (user $username)"

# -- 3. the controller ---------------------------------------------------------------------------
step "Starting tidal's controller in the background (log: $state_dir/controller.log)"
read -r storage_port metrics_port health_port < <("$PY" - <<'EOF'
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
EOF
)
"${tidal_cmd[@]}" controller --storage-path "$state_dir/data" --git-cache-path "$state_dir/git" \
  --storage-addr "127.0.0.1:$storage_port" --metrics-addr "127.0.0.1:$metrics_port" \
  --health-addr "127.0.0.1:$health_port" --log-encoding console \
  >"$state_dir/controller.log" 2>&1 &
pids+=($!)

# -- 4. bootstrap --------------------------------------------------------------------------------
step "tidal bootstrap git --url $url --path clusters/demo -n $namespace"
if ! GIT_PASSWORD=$(field password) run_job "${tidal_cmd[@]}" bootstrap git --url "$url" \
  --allow-insecure-http --token-auth --username "$username" --path clusters/demo \
  --namespace "$namespace" --silent --timeout 3m; then
  echo "demo: bootstrap failed; the controller's log is $state_dir/controller.log" >&2
  exit 1
fi

# -- 5. what is there now ------------------------------------------------------------------------
step "The cluster follows Git"
if tidal get all --help >/dev/null 2>&1; then
  tidal get all -A
else
  tidal get sources git -A
  echo
  tidal get kustomizations -A
fi
kubectl=$ROOT/.venv/bin/kubectl
if [ -x "$kubectl" ]; then
  echo
  "$kubectl" -n tidal-demo get configmap greeting -o jsonpath='greeting: {.data.message}{"\n"}'
fi

work=$state_dir/work
if [ ! -d "$work/.git" ]; then
  git clone --quiet "$(field clone_url)" "$work"
  git -C "$work" config user.name "tidal demo"
  git -C "$work" config user.email "demo@tidal.invalid"
else
  git -C "$work" remote set-url origin "$(field clone_url)"
  git -C "$work" pull --quiet --ff-only || true
fi

kubectl_hint=""
if [ -x "$kubectl" ]; then
  kubectl_hint="
  $kubectl -n tidal-demo get configmap greeting -o jsonpath='{.data.message}'"
fi
cat <<MSG

The cluster is bootstrapped from $url:
  clusters/demo/$namespace/
      tidal's own manifests, and the GitRepository and Kustomization that keep it in sync
  clusters/demo/hello/
      the application (apps/hello/): namespace tidal-demo, ConfigMap greeting, Deployment hello

Change it, push, and watch the change arrive (a working copy is ready in $work).
In another shell:
  export KUBECONFIG=$KUBECONFIG
  cd $work
  sed -i 's/Hello from Git!/Hello again!/' apps/hello/configmap.yaml
  git commit -am "Say hello again" && git push
  $TIDAL reconcile kustomization $namespace -n $namespace --with-source${kubectl_hint}
Without the reconcile, the cluster notices the push within a minute (the sync interval):
  $TIDAL get kustomizations -A
MSG

if [ "$once" = 1 ]; then
  exit 0
fi
cat <<MSG

Press Ctrl-C to stop the demo (the controller and the Git server). The control plane keeps
running; \`make down\` stops it. \`make demo\` again picks up where you left off.
MSG
wait "${pids[@]}"
