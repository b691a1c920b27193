import sys

try:
    from retrotread.cli import main
except KeyboardInterrupt:  # Ctrl-C while starting up: nothing was sent to any treadmill
    sys.exit(130)

sys.exit(main())
