"""``python -m edgecoder`` runs the ``edgecoder`` command."""

from edgecoder.cli.main import main

raise SystemExit(main())
