"""PyInstaller entry point of the lea-peer package's ``lea-peer``: the ``lea-peer`` console script."""

import sys

from lea_peer.cli import main

if __name__ == "__main__":
    sys.exit(main())
