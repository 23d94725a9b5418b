"""Adapters: the skins (HTTP, D-Bus, transports, backends) over :mod:`edgecoder.services`."""
