"""xpnet: Deep Learning from Scratch, chapter 6, on any Array API backend."""

from xpnet.backend import Backend, BackendUnavailableError, available_backends, get_backend

__version__ = "0.1.0"

__all__ = [
    "Backend",
    "BackendUnavailableError",
    "available_backends",
    "get_backend",
]
