"""`shotstyle render`: stylize a frame range with a trained model, as a good render-farm citizen.

Frames and chunks are given the ways farm managers pass them: ``--frames 1001-1100``,
``--frames 1001-1100x2``, ``--frames 1001 1100`` or ``--start 1001 --end 1100``; ``--within``
limits a chunk to a shot's own frame list. Input and output are sequence patterns
(``plate.####.exr``, ``%04d``, ``$F4``).

Resumable and safe to run many times at once into one folder: complete frames are skipped
(`outputs`), every frame is claimed before it is rendered (`claims`) and handed out once
(`scheduler`), written atomically and its claim removed after (`writer`); frames claimed by a
live process are waited for, so every chunk ends with all its frames present.

Where pixels are computed (`backend.Backend`): ``--server A,B`` spreads frames over those
servers with several in flight each (`servers`); without it the local server, started if
absent; ``--in-process`` runs the engine here (`inprocess`).

Output (`progress`): ``PROGRESS: NN%`` after every frame (the form farm managers parse) or, with
``--json-progress``, one JSON object per line; a summary line at the end. The exit status is
one of `plugin.exitcodes.ExitCode`: 0 every frame rendered or already complete, 2 bad
arguments, 3 some input frames do not exist (the others were rendered), 4 the model file is
unreadable, 5 no server answered, 6 some frames failed (named in the log).

The package: `command` (arguments and `run`), `outputs`, `claims`, `scheduler`, `progress`,
`writer`, `backend` (the protocol), `inprocess`, `servers`.
"""

from shotstyle.cli.render.command import configure, frames_from_args, run

__all__ = ["configure", "frames_from_args", "run"]
