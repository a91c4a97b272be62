"""The `dyno` command line, over the pipeline, training and registry layers."""
