"""``python -m lea_peer``: the same as the ``lea-peer`` console script."""

import sys

from lea_peer.cli import main

sys.exit(main())
