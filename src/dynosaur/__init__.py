"""Dynosaur: instruction-tuning corpora grown from annotated datasets.

Layers, imports flowing one way: core → pipeline → registry → training → cli.
"""
