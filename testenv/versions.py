"""Pinned versions of the test control plane.

One Kubernetes release for apiserver, controller-manager and scheduler; the etcd release whose
client that Kubernetes release vendors; the newest kwok. Changing a pin changes the cache key, so
a stale build is never reused.
"""

KUBERNETES = "v1.37.2"
ETCD = "v3.7.2"
KWOK = "v0.8.0"

# The flux CLI, built as a test oracle for tidal's CLI (testenv.flux_cli); cached on its own.
FLUX = "v2.9.5"

# The CNCF distribution registry, a real OCI registry for OCIRepository tests (testenv.registry).
DISTRIBUTION = "v3.1.1"

# The cosign CLI (testenv.cosign), to sign test artifacts for OCIRepository spec.verify.
COSIGN = "v3.0.6"

# The helm CLI (testenv.helm_cli), a test oracle for tidal.helm: the Helm SDK release that
# helm-python-sdk 0.2.2 embeds (helm_python.helm_sdk_version()), so both sides run the same code.
HELM = "v4.2.3"

# The Go toolchain directive written into the wrapper modules; k8s.io/kubernetes v1.37 asks 1.26.
GO_DIRECTIVE = "1.26.0"


def cache_key() -> str:
    return f"k8s-{KUBERNETES}_etcd-{ETCD}_kwok-{KWOK}"
