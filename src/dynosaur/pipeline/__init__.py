"""The corpus stages of dvc.yaml (collect, generate, filter, organize) and what they share."""
