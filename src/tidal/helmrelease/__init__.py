"""The HelmRelease controller: Flux helm-controller's reconciliation on tidal's Helm engine."""
