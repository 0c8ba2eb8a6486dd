"""The shotstyle server side: the ZeroMQ server, its jobs and model store,
server-side frame I/O (OpenImageIO) and the engine (network, losses, training,
inference)."""
