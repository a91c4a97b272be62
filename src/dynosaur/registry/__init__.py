"""Releases: the ledger, manifests, diffs, pulls, verification and Hub publishing."""
