import sys

from dfsim.cli import main

sys.exit(main())
