import sys

from dfsim.tools.cli import main

sys.exit(main())
