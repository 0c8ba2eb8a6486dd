"""Host nodes: Nuke, DaVinci Resolve / Fusion, and the farm command line."""
