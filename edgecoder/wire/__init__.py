"""The mesh wire: canonical encoding, request envelopes, signed records, sealed payloads."""
