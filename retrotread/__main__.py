import sys

from retrotread.cli import main

sys.exit(main())
