"""Home of the compiled core: ``setup.py`` builds ``_speedups/*.pyx`` into this package."""
