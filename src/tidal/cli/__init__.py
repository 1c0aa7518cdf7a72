"""The `tidal` command line, shaped after the flux CLI."""
