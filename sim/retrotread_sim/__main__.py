import sys

from retrotread_sim.cli import main

sys.exit(main())
