"""The ShotStyle Fusion script for DaVinci Resolve / Fusion Studio (stdlib, pyzmq, shotstyle.plugin)."""
