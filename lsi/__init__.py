"""Layer Shapley importance for LLMs."""
