"""`python -m shotstyle.cli COMMAND ...`: the `shotstyle` command."""

from shotstyle.cli.main import main

if __name__ == "__main__":
    main()
