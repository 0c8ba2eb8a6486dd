"""The `shotstyle` command line: one module per command (`main` holds the table), and what they share."""
