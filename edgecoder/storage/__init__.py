"""Durable state in the data directory: the directory itself, the node key, the database."""
