"""kustomize.toolkit.fluxcd.io: the Kustomization controller, Flux's GitOps loop."""
