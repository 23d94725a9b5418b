"""Local control surfaces: D-Bus."""
