"""A local stand-in for the LLM providers, faithful on the wire (see docs/providers.md)."""
