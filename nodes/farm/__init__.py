"""The `shotstyle` command line: the batch / render-farm host."""
