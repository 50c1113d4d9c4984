"""PyInstaller entry point of the lea-server package's ``lea-backend``: the ``lea-backend`` console script."""

import sys

from backend.cli import main

if __name__ == "__main__":
    sys.exit(main())
