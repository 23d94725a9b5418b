"""The credit ledger: per-node signed chains of entries, priced from task receipts.

Pure core (no I/O): :mod:`pricing` (what a task costs), :mod:`entries` (the entry format,
its hash and signature), :mod:`rules` (what a valid chain is, and the balances it
implies). See ``docs/ledger.md``.
"""
