"""The train, evaluate and continual stages over the corpus or a release."""
