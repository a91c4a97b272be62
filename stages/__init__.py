"""The DVC stages (`collect → generate → filter → organize`) and their shared pieces.

Each stage module has pure functions and a thin `main()` that does the I/O;
`sources` reads datasets, `llm` owns every LLM call, `params` validates `params.yaml`.
"""
