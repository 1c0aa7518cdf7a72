"""Kubernetes access: connection, YAML manifests, object identity, apply, health."""
