"""Node identity, signatures and sealing: the security core (no I/O)."""
