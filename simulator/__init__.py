"""A local stand-in for the LLM providers, faithful on the wire (see shared/docs/providers.md §7)."""
