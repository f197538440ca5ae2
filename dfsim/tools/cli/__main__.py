"""``python -m dfsim.tools.cli``: the ``dfsim`` command."""

import sys

from dfsim.tools.cli import main

sys.exit(main())
