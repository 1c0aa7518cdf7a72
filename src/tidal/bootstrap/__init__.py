"""`tidal bootstrap`: commit tidal's own manifests to a Git repository and point the cluster at
it, as `flux bootstrap` does, so that from then on the cluster (tidal included) follows Git.

- `manifests`: the files written under `<path>/<namespace>/` (gotk-components.yaml,
  gotk-sync.yaml, kustomization.yaml), pure functions;
- `access`: what the flags mean for Git access: the CLI's own credentials, the URL and Secret
  the cluster syncs with;
- `checkout`: one branch of the repository, cloned, edited as trees, committed and pushed with
  tidal's Git transports;
- `steps`: flux's bootstrap steps against the cluster, with flux's progress lines.

This package sits at the CLI layer: it prints through `tidal.cli.output` and talks to the
cluster through `tidal.cli.cluster`, like the verbs do.
"""
