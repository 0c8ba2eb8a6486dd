"""Nuke menu registration: a ShotStyle entry (with its icon) in the Nodes toolbar and Tab menu.

Called from the menu.py block install.py adds to ``~/.nuke/menu.py`` (GUI sessions only).
"""

from __future__ import annotations

import nuke

ICON = "ShotStyle.png"   # found on the plugin path (install.py adds this folder)
COMMAND = "import shotstyle.nodes.nuke.node as _ss; _ss.create()"


def register() -> None:
    toolbar = nuke.toolbar("Nodes")
    if toolbar is None:
        return
    submenu = toolbar.addMenu("ShotStyle", icon=ICON)
    submenu.addCommand("ShotStyle", COMMAND, icon=ICON)
