"""Pure-Python twins of the compiled core in ``_speedups/``: the type contract."""
