"""The gossip mesh: membership and dissemination as sans-I/O state machines."""
