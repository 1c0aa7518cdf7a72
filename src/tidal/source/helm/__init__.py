"""Helm repositories: the index (tidal.source.helm.index) and how it is fetched
(tidal.source.helm.fetch)."""
