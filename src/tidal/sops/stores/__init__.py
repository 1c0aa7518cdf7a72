"""SOPS's stores: reading and writing each file format SOPS encrypts (yaml, json, dotenv, ini,
binary), behaving as SOPS 3.11's `stores` packages do. `tidal.sops.formats` is the entry point."""
