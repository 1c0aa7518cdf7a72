"""SOPS decryption (age and OpenPGP) for Kustomizations: the file formats (`formats`, `stores`),
the keys (`keys`), the values and the MAC (`cipher`, `tree`, `decrypt`); see
`tidal.kustomize.decryption` for where the controller uses them."""
