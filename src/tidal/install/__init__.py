"""What `tidal install` deploys, and how it is applied."""
