"""Dynosaur's records, release registry and the `dyno` command line."""
