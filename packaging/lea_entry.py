"""PyInstaller entry point of the bundled ``lea``: the same as the ``lea`` console script.

``lea __lea-backend__ ARGS`` (``resources.app.BACKEND_SUBCOMMAND``, hidden) is ``lea-backend ARGS``:
LEA starts its embedded backend child process from the bundle's own executable (issue #13).
"""

import sys

from resources.app import BACKEND_SUBCOMMAND

if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == BACKEND_SUBCOMMAND:
        from backend.cli import main as backend_main

        sys.exit(backend_main(sys.argv[2:]))
    from lea_app.main import main

    sys.exit(main())
