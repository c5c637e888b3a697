"""WorkEngine: decides what an autonomous agent's orchestrator works on next."""

__version__ = "0.1.0"
