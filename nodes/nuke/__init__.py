"""The ShotStyle node for Foundry Nuke (runs inside Nuke's Python: stdlib, pyzmq, shotstyle.plugin)."""
