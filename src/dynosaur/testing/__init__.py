"""Loopback fakes (OpenAI, Batch API, Hub) and test helpers that ship with the package."""
