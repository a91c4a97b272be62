"""The corpus stages (collect → generate → filter → organize) and the LLM client they share."""
