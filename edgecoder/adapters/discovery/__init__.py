"""LAN discovery adapters (mDNS)."""
