"""The `dyno` command: a thin layer over the registry, pipeline and training functions."""
