"""Charts the Helm engine tests package in memory, and render tests that need only the Helm SDK.

`package(files)` builds a chart .tgz from a {path: text} map; the e2e tests compare what tidal
renders from these charts with `helm template` of the same archive.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

PODINFO = Path(__file__).resolve().parents[3] / "shared/corpus/stefanprodan__podinfo/charts/podinfo"


def package(files: dict[str, str | bytes], *, mtime: int = 1_700_000_000) -> bytes:
    """A chart archive: gzip'd tar of `files`, paths as given (they start with the chart dir)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path, content in sorted(files.items()):
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(path)
            info.size, info.mtime, info.mode = len(data), mtime, 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def package_dir(root: Path) -> bytes:
    files = {
        f"{root.name}/{p.relative_to(root)}": p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
    return package(files)


def _chart_yaml(name: str, **extra: str) -> str:
    lines = [
        "apiVersion: v2",
        f"name: {name}",
        "version: 1.2.3",
        *[f"{k}: {v}" for k, v in extra.items()],
    ]
    return "\n".join(lines) + "\n"


PARENT_CHART = """apiVersion: v2
name: parent
version: 0.3.0
appVersion: "2.0"
kubeVersion: ">=1.20.0-0"
dependencies:
  - name: child
    version: 1.2.3
  - name: lib
    version: 1.2.3
  - name: extra
    version: 1.2.3
    condition: extra.enabled
"""

PARENT_VALUES = """replicas: 2
global:
  env: prod
child:
  greeting: hello from parent
extra:
  enabled: false
"""

HOOKS = """apiVersion: batch/v1
kind: Job
metadata:
  name: {{ .Release.Name }}-migrate
  annotations:
    "helm.sh/hook": pre-install,pre-upgrade
    "helm.sh/hook-weight": "5"
    "helm.sh/hook-delete-policy": before-hook-creation,hook-succeeded
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: m, image: busybox}]
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-prehook
  annotations:
    helm.sh/hook: pre-install
    helm.sh/hook-weight: "-3"
data: {a: b}
---
apiVersion: v1
kind: Pod
metadata:
  name: {{ .Release.Name }}-test
  annotations:
    helm.sh/hook: test
    helm.sh/hook-delete-policy: hook-succeeded
    helm.sh/hook-output-log-policy: hook-failed
spec:
  containers: [{name: t, image: busybox}]
---
apiVersion: v1
kind: Secret
metadata:
  name: {{ .Release.Name }}-unknown-hook
  annotations:
    helm.sh/hook: not-a-hook
"""

RESOURCES = """# a comment-only document is kept by Helm
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "lib.fullname" . }}
  labels: {{- include "lib.labels" . | nindent 4 }}
spec:
  replicas: {{ .Values.replicas }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ .Release.Name }}-svc
  namespace: {{ .Release.Namespace }}
---
apiVersion: example.com/v1
kind: Widget
metadata:
  name: w
---

---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-caps
  annotations:
    note: plain annotation, not a hook
data:
  kube: {{ .Capabilities.KubeVersion.Version | quote }}
  minor: {{ .Capabilities.KubeVersion.Minor | quote }}
  widgets: {{ .Capabilities.APIVersions.Has "example.com/v1" | quote }}
  widgetKind: {{ .Capabilities.APIVersions.Has "example.com/v1/Widget" | quote }}
  revision: {{ .Release.Revision | quote }}
  install: {{ .Release.IsInstall | quote }}
  upgrade: {{ .Release.IsUpgrade | quote }}
"""

CRD = """apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {plural}.example.com
spec:
  group: example.com
  names: {{kind: {kind}, plural: {plural}}}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema: {{openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}}}
"""


def parent_chart() -> bytes:
    """Subchart with values override and globals, a library chart, a disabled subchart, hooks
    with weights, NOTES.txt, crds/ in parent and subchart, Capabilities."""
    return package(
        {
            "parent/Chart.yaml": PARENT_CHART,
            "parent/values.yaml": PARENT_VALUES,
            "parent/README.md": "# parent\n",
            "parent/templates/NOTES.txt": "Installed {{ .Release.Name }} in "
            "{{ .Release.Namespace }}"
            " ({{ .Values.global.env }}).\n",
            "parent/templates/resources.yaml": RESOURCES,
            "parent/templates/hooks.yaml": HOOKS,
            "parent/templates/empty.yaml": "{{- if false }}\nkind: Nothing\n{{- end }}\n",
            "parent/templates/_partial.yaml": "{{/* underscore files are never manifests */}}\n",
            "parent/crds/widgets.yaml": CRD.format(kind="Widget", plural="widgets"),
            "parent/charts/child/Chart.yaml": _chart_yaml("child"),
            "parent/charts/child/values.yaml": "greeting: default greeting\n",
            "parent/charts/child/templates/NOTES.txt": "child notes are not shown\n",
            "parent/charts/child/templates/cm.yaml": (
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-child\n"
                "data:\n  greeting: {{ .Values.greeting | quote }}\n"
                "  env: {{ .Values.global.env | quote }}\n"
            ),
            "parent/charts/child/crds/gadgets.yaml": CRD.format(kind="Gadget", plural="gadgets"),
            "parent/charts/lib/Chart.yaml": _chart_yaml("lib", type="library"),
            "parent/charts/lib/templates/_helpers.tpl": (
                '{{- define "lib.fullname" -}}{{ .Release.Name }}-{{ .Chart.Name }}{{- end }}\n'
                '{{- define "lib.labels" -}}\napp: {{ .Chart.Name }}\n'
                "chart: {{ .Chart.Name }}-{{ .Chart.Version }}\n{{- end }}\n"
            ),
            "parent/charts/extra/Chart.yaml": _chart_yaml("extra"),
            "parent/charts/extra/templates/cm.yaml": (
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: must-not-render\n"
            ),
        }
    )


def required_chart() -> bytes:
    return package(
        {
            "needs/Chart.yaml": _chart_yaml("needs"),
            "needs/values.yaml": "image: {}\n",
            "needs/templates/cm.yaml": (
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n"
                '  tag: {{ required "image.tag is required" .Values.image.tag }}\n'
            ),
        }
    )


SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "required": ["replicas"],
    "properties": {"replicas": {"type": "integer", "minimum": 1}},
}


def schema_chart() -> bytes:
    return package(
        {
            "strict/Chart.yaml": _chart_yaml("strict"),
            "strict/values.yaml": "replicas: 1\n",
            "strict/values.schema.json": json.dumps(SCHEMA, indent=2) + "\n",
            "strict/templates/cm.yaml": (
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n"
                "  replicas: {{ .Values.replicas | quote }}\n"
            ),
        }
    )


def bad_yaml_chart() -> bytes:
    return package(
        {
            "bad/Chart.yaml": _chart_yaml("bad"),
            "bad/templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [x\n",
        }
    )


def many_objects_chart(count: int) -> bytes:
    """`count` ConfigMaps and Deployments from one ranged template (for bench/)."""
    template = """{{- range $i := until (int .Values.count) }}
---
apiVersion: {{ if eq (mod $i 2) 0 }}v1{{ else }}apps/v1{{ end }}
kind: {{ if eq (mod $i 2) 0 }}ConfigMap{{ else }}Deployment{{ end }}
metadata:
  name: {{ $.Release.Name }}-{{ $i }}
  labels: {{- include "many.labels" $ | nindent 4 }}
{{- if eq (mod $i 2) 0 }}
data:
  index: {{ $i | quote }}
  digest: {{ printf "%d-%s" $i $.Values.salt | sha256sum | trunc 16 | quote }}
{{- else }}
spec:
  replicas: {{ $.Values.replicas }}
  selector: {matchLabels: {app: many-{{ $i }}}}
  template:
    metadata: {labels: {app: many-{{ $i }}}}
    spec:
      containers:
        - name: app
          image: {{ $.Values.image | quote }}
          env:
{{- range $k, $v := $.Values.env }}
            - {name: {{ $k | upper }}, value: {{ $v | quote }}}
{{- end }}
{{- end }}
{{- end }}
"""
    return package(
        {
            "many/Chart.yaml": _chart_yaml("many"),
            "many/values.yaml": (
                f"count: {count}\nreplicas: 2\nsalt: abc\nimage: nginx:1.27\n"
                "env: {alpha: one, beta: two, gamma: three}\n"
            ),
            "many/templates/_helpers.tpl": (
                '{{- define "many.labels" -}}\napp.kubernetes.io/name: {{ .Chart.Name }}\n'
                "app.kubernetes.io/instance: {{ .Release.Name }}\n{{- end }}\n"
            ),
            "many/templates/objects.yaml": template,
        }
    )


# --- render tests needing only the SDK (no cluster, no helm CLI) ------------------------------


def test_parent_chart_renders_subcharts_library_and_hooks() -> None:
    pytest.importorskip("helm_python")  # here, not at import: bench/ imports the builders
    from tidal.helm.chart import load_chart
    from tidal.helm.render import render

    chart = load_chart(parent_chart())
    assert (chart.name, chart.version, chart.app_version) == ("parent", "0.3.0", "2.0")
    out = render(
        chart,
        {"replicas": 3},
        release_name="r1",
        namespace="ns",
        revision=1,
        is_install=True,
        is_upgrade=False,
        kube_version="v1.31.4",
        api_versions=["example.com/v1"],
    )
    assert "must-not-render" not in out.manifest
    assert "hello from parent" in out.manifest and '"prod"' in out.manifest
    assert out.notes == "Installed r1 in ns (prod).\n"
    assert [n for n, _ in out.crds] == [
        "parent/crds/widgets.yaml",
        "parent/charts/child/crds/gadgets.yaml",
    ]
    kinds = [(h.kind, h.name, h.events, h.weight) for h in out.hooks]
    assert ("Job", "r1-migrate", ("pre-install", "pre-upgrade"), 5) in kinds
    assert not any(h.name == "r1-unknown-hook" for h in out.hooks)
    assert out.config == {"replicas": 3}
    assert out.values["replicas"] == 3 and out.values["child"]["greeting"] == "hello from parent"
