"""``python -m backend``: the ``lea-backend`` admin CLI."""

from backend.cli import main

raise SystemExit(main())
