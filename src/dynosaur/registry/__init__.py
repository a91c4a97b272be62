"""The ledger, releases, manifests, diffs, pulls and verification over git and DVC (imports core only)."""
