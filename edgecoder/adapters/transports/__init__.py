"""Node-to-node transports: the mesh listener (port 4301) and, later, BLE and mDNS."""
