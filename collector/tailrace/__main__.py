import sys

from tailrace import cli

sys.exit(cli.main())
