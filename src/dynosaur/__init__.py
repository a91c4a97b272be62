"""Dynosaur: instruction-tuning corpora grown from annotated datasets, as an incremental DVC pipeline."""
