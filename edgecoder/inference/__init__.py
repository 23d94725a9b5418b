"""Inference contracts: what every backend offers, in types that know nothing of HTTP."""
