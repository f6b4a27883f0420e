"""xpnet's version, in a module of its own so that any module (checkpoints record it) can read
it without importing the whole package."""

__version__ = "0.1.0"
