"""A kubeconfig for Helm's `lookup`, written from a tidal client: the same server, CA,
credentials and impersonated identity, so templates read the cluster as the release's actions
write it (helm-controller renders with the client it installs with).

Credentials stay where they are: inline data stays inline and file references stay files;
the text goes to the SDK, which keeps it in a private temporary file. An exec plugin or auth
provider is not carried over (None: templates then render with `lookup` answering nothing).
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import yaml

from tidal.kube.client import Kube


def _b64(value: str | bytes) -> str:
    data = value.encode() if isinstance(value, str) else value
    return base64.b64encode(data).decode()


def kubeconfig_for(kube: Kube) -> str | None:
    config = kube.config
    cluster, user = config.cluster, config.user
    if user is not None and (user.exec or user.auth_provider):
        return None
    c: dict[str, Any] = {"server": str(cluster.server)}
    if cluster.certificate_auth_data:
        c["certificate-authority-data"] = cluster.certificate_auth_data
    elif cluster.certificate_auth:
        c["certificate-authority-data"] = _b64(Path(cluster.certificate_auth).read_bytes())
    if cluster.insecure:
        c["insecure-skip-tls-verify"] = True
    u: dict[str, Any] = {}
    if user is not None:
        if user.token:
            u["token"] = user.token
        elif user.token_file:
            u["tokenFile"] = str(user.token_file)
        if user.client_cert_data:
            u["client-certificate-data"] = user.client_cert_data
        elif user.client_cert:
            u["client-certificate"] = str(user.client_cert)
        if user.client_key_data:
            u["client-key-data"] = user.client_key_data
        elif user.client_key:
            u["client-key"] = str(user.client_key)
        if user.username:
            u["username"] = user.username
            u["password"] = user.password or ""
    if kube.impersonate:
        u["as"] = kube.impersonate
        if kube.impersonate_groups:
            u["as-groups"] = list(kube.impersonate_groups)
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "tidal", "cluster": c}],
        "users": [{"name": "tidal", "user": u}],
        "contexts": [{"name": "tidal", "context": {"cluster": "tidal", "user": "tidal"}}],
        "current-context": "tidal",
    }
    return yaml.safe_dump(document, sort_keys=False)
