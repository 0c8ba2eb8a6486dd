"""The engine: colour in -> network -> colour out, plus the losses and the
training that make a network. Knows nothing of ZeroMQ or of any host."""
