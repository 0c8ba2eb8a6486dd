"""`python -m shotstyle.server`: the same as `shotstyle serve` (what a client runs to start its local server)."""

import sys

from shotstyle.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
