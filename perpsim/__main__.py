import sys

from perpsim.cli import main

sys.exit(main())
