"""Helm engine layer under HelmRelease: chart loading, rendering as Helm's install action does,
and Helm's release storage (the `secret` driver), so the helm CLI and tidal see the same releases.

Only `tidal.helm.engine` imports the Helm SDK (helm-python-sdk, the optional `helm` extra); the
other modules import it lazily, so tidal runs without the extra until a chart is loaded.
"""
