"""Fakes for tests and benchmarks (OpenAI-compatible and Hub servers); the package never imports them."""
