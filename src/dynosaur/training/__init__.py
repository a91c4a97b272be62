"""The train, evaluate and continual stages of dvc.yaml, and replay selection."""
