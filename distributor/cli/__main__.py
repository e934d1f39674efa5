"""``python -m distributor.cli``: the same as the distributor script."""

from distributor.cli import main

raise SystemExit(main())
