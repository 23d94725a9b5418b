"""The ``edgecoder`` command line: a thin skin over the daemon and the local node."""
