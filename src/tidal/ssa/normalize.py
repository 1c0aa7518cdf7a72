"""Desired objects made the way the API server will store them, before apply and diff.

Server-side apply keys the ports lists of Pods and Services by (port, protocol); an entry
without a protocol is defaulted to TCP by the server, and some server versions then fail the
apply or report drift forever. Flux fills the default in first; so do we. A conversion webhook
caBundle in a CRD is injected by cert-manager-like controllers after apply, so declaring one
would fight them: it is dropped, as Flux does.
"""

from __future__ import annotations

from typing import Any

from tidal.ssa.objects import Obj, group, kind

_POD_TEMPLATE_PATHS = {
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "ReplicationController": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
    "Pod": ("spec",),
}


def _walk(obj: Any, path: tuple[str, ...]) -> Any:
    for p in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(p)
    return obj


def _default_protocol(ports: Any) -> None:
    if isinstance(ports, list):
        for port in ports:
            if isinstance(port, dict) and "protocol" not in port:
                port["protocol"] = "TCP"


def normalize(obj: Obj) -> Obj:
    """Fill server defaults that SSA needs in place; returns `obj`."""
    k = kind(obj)
    pod_path = _POD_TEMPLATE_PATHS.get(k)
    if pod_path is not None and group(obj) in ("", "apps", "batch"):
        pod = _walk(obj, pod_path)
        if isinstance(pod, dict):
            for key in ("containers", "initContainers"):
                for c in pod.get(key) or []:
                    if isinstance(c, dict):
                        _default_protocol(c.get("ports"))
    elif k == "Service" and group(obj) == "":
        _default_protocol(_walk(obj, ("spec", "ports")))
    elif k == "CustomResourceDefinition" and group(obj) == "apiextensions.k8s.io":
        client = _walk(obj, ("spec", "conversion", "webhook", "clientConfig"))
        if isinstance(client, dict):
            client.pop("caBundle", None)
    return obj
