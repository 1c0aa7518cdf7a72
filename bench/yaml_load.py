"""Benchmark: tidal's manifest loader and dumper against the YAML libraries it could have used.

Generates a multi-document stream of ~5 MB (about 5,000 Deployments, Services and ConfigMaps with
multi-line data, the shape of a large `kustomize build` output) and times, in one run:

- loading: tidal.kube.yamlio.load_all; PyYAML's libyaml loader (yaml.load_all with CSafeLoader);
  PyYAML's pure-Python safe_load_all; ruamel.yaml's safe loader on its C extension (if installed);
- dumping the loaded objects: tidal.kube.yamlio.dump_all; yaml.dump_all with CSafeDumper;
  json.dumps (the floor: no YAML at all).

Each cell is the median of --repeat runs (3). Ratios are against the libyaml row of the same
operation (CSafeLoader for loads, CSafeDumper for dumps); below 1 is faster.

    .venv/bin/python bench/yaml_load.py [--docs 5000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import yaml

from tidal.kube.yamlio import dump_all, load_all

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "kilo"]


def deployment(rnd: random.Random, i: int) -> str:
    indent = " " * 12
    env = "".join(
        f"{indent}- name: VAR_{j}\n{indent}  value: {json.dumps(rnd.choice(WORDS) + str(j))}\n"
        for j in range(rnd.randint(2, 6))
    )
    return f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-{i}
  namespace: team-{i % 17}
  labels:
    app.kubernetes.io/name: app-{i}
    app.kubernetes.io/part-of: shop
  annotations:
    checksum/config: "{rnd.getrandbits(128):032x}"
spec:
  replicas: {rnd.randint(1, 5)}
  revisionHistoryLimit: 10
  selector:
    matchLabels:
      app.kubernetes.io/name: app-{i}
  strategy:
    type: RollingUpdate
    rollingUpdate: {{maxSurge: 25%, maxUnavailable: 0}}
  template:
    metadata:
      labels:
        app.kubernetes.io/name: app-{i}
    spec:
      serviceAccountName: app-{i}
      securityContext: {{runAsNonRoot: true, runAsUser: 65532, fsGroup: 65532}}
      containers:
        - name: app
          image: "registry.example.com/shop/app-{i}:1.{rnd.randint(0, 40)}.{rnd.randint(0, 9)}"
          imagePullPolicy: IfNotPresent
          args: ["--port=8080", "--log-level=info", "--enable-metrics=true"]
          ports:
            - {{name: http, containerPort: 8080, protocol: TCP}}
            - {{name: metrics, containerPort: 9090, protocol: TCP}}
          env:
{env}          resources:
            requests: {{cpu: {rnd.randint(10, 500)}m, memory: {rnd.randint(32, 512)}Mi}}
            limits: {{cpu: "1", memory: 1Gi}}
          readinessProbe:
            httpGet: {{path: /readyz, port: http}}
            periodSeconds: 10
            timeoutSeconds: 2
          livenessProbe:
            httpGet: {{path: /healthz, port: http}}
            initialDelaySeconds: 5
"""


def service(rnd: random.Random, i: int) -> str:
    return f"""apiVersion: v1
kind: Service
metadata:
  name: app-{i}
  namespace: team-{i % 17}
  labels:
    app.kubernetes.io/name: app-{i}
spec:
  type: ClusterIP
  selector:
    app.kubernetes.io/name: app-{i}
  ports:
    - name: http
      port: 80
      targetPort: http
      protocol: TCP
"""


def configmap(rnd: random.Random, i: int) -> str:
    lines = "".join(
        f"    {rnd.choice(WORDS)}.{j} = {rnd.choice(WORDS)} {rnd.randint(0, 10**6)}\n"
        for j in range(rnd.randint(10, 40))
    )
    return f"""apiVersion: v1
kind: ConfigMap
metadata:
  name: app-{i}-config
  namespace: team-{i % 17}
data:
  LOG_LEVEL: info
  FEATURE_FLAG: "true"
  app.properties: |
{lines}  nginx.conf: |
    server {{
      listen 8080;
      location / {{ proxy_pass http://127.0.0.1:9000; }}
    }}
"""


def make_stream(docs: int) -> str:
    rnd = random.Random(42)
    makers = (deployment, service, configmap)
    return "---\n".join(makers[i % 3](rnd, i // 3) for i in range(docs))


def timed(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def pkg(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    text = make_stream(args.docs)
    reference = list(yaml.load_all(text, Loader=yaml.CSafeLoader))
    ours = load_all(text)
    if ours != reference:
        sys.exit("tidal's load_all disagrees with PyYAML on the benchmark stream")
    if load_all(dump_all(ours)) != ours:
        sys.exit("dump_all output does not load back to the same objects")

    loads: list[tuple[str, Callable[[], Any]]] = [
        ("tidal load_all", lambda: load_all(text)),
        (
            "PyYAML CSafeLoader (libyaml)",
            lambda: list(yaml.load_all(text, Loader=yaml.CSafeLoader)),
        ),
        ("PyYAML safe_load_all (pure Python)", lambda: list(yaml.safe_load_all(text))),
    ]
    try:
        from ruamel.yaml import YAML

        ruamel = YAML(typ="safe", pure=False)
        loads.append(("ruamel.yaml safe (C)", lambda: list(ruamel.load_all(text))))
    except ImportError:
        pass
    dumps: list[tuple[str, Callable[[], Any]]] = [
        ("tidal dump_all", lambda: dump_all(ours)),
        (
            "PyYAML CSafeDumper (libyaml)",
            lambda: yaml.dump_all(
                ours, Dumper=yaml.CSafeDumper, sort_keys=False, allow_unicode=True
            ),
        ),
        ("json.dumps (no YAML)", lambda: json.dumps(ours)),
    ]

    print(
        f"stream: {args.docs} documents, {len(text.encode()) / 1e6:.2f} MB; median of {args.repeat}"
    )
    print(
        f"python {platform.python_version()}, PyYAML {yaml.__version__} "
        f"(libyaml {yaml._yaml.get_version_string()}), ruamel.yaml {pkg('ruamel.yaml')}, "
        f"ruamel.yaml.clib {pkg('ruamel.yaml.clib')}"
    )
    print()
    print(f"{'operation':<38} {'seconds':>8} {'MB/s':>7} {'vs libyaml':>10}")
    size = len(text.encode()) / 1e6
    for rows in (loads, dumps):
        results = [(name, timed(fn, args.repeat)) for name, fn in rows]
        base = results[1][1]
        for name, seconds in results:
            print(f"{name:<38} {seconds:8.3f} {size / seconds:7.1f} {seconds / base:9.2f}x")
        print()


if __name__ == "__main__":
    main()
