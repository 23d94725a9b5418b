"""EdgeCoder: a decentralized mesh of office machines serving AI coding assistance."""

__version__ = "0.1.0"

__all__ = ("__version__",)
