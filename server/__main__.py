"""`python -m shotstyle.server`: run the server (the same as `shotstyle serve`)."""

import sys

from shotstyle.server.app import main

if __name__ == "__main__":
    sys.exit(main())
