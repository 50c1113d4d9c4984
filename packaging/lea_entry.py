"""PyInstaller entry point of the bundled ``lea``: the same as the ``lea`` console script."""

import sys

from lea_app.main import main

if __name__ == "__main__":
    sys.exit(main())
