"""``python -m perdure.cli``: the ``perdure`` command."""

from . import main

raise SystemExit(main())
