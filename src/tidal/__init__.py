"""tidal: a Flux-compatible GitOps toolkit for Kubernetes."""

__version__ = "0.1.0"
