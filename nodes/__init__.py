"""Host nodes: Nuke and DaVinci Resolve / Fusion, their shared bridge to a server, and their installs."""
