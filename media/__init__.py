"""Frame I/O, below both the server and the commands: every image file or image payload shotstyle
reads or writes goes through here.

Built on OpenImageIO. A `Frame` holds the data window of one image (all channels, float32),
its windows, per-channel storage formats and every metadata attribute, so that an EXR read
and written back keeps data/display windows, pixel aspect, metadata, half vs float per channel
and compression; only the RGB channels are ever replaced (`frame.Frame.with_rgb`), everything
else (alpha, Z, AOVs) goes back out bit-exact. PNG/JPEG/TIFF/DPX read into the same `Frame`.

Reading is guarded so a long-lived server can feed it untrusted files: OpenImageIO's errors
(damaged headers, missing or corrupt chunks) become `FrameIOError` naming the file and the problem
(server.errors holds the one error tree), and the header's claimed size is checked against `MAX_FRAME_BYTES` before any pixel
memory is allocated. Tiled / mip-mapped input is read at its full-resolution level and an EXR
is written back with the same tiles, one level, without a thumbnail image (`probe`'s
``not_kept`` says what a file loses so; `render` says it once). A multi-view (stereo) EXR's views each have their RGB (`frame.Frame.views`).
Multi-part and deep EXRs, and OpenImageIO's luminance-only reading of luminance/chroma EXRs,
are refused with a message saying so (see `frame.Frame.rgb_indices`).

Known limit: pixels are float32, so "uint" (uint32) channels hold integers exactly only up to
2**24; larger IDs lose their low bits.

Writes are atomic: a temporary file in the destination folder (``.NAME.XXXXXXXX.tmp.EXT``, so a
later run can find the ones a killed process left: `writing.temporary_target`), then `os.replace`,
so a killed process never leaves a half-written frame under the final name. The file is
encoded in memory and then copied there, because OpenImageIO's writers lose the system's reason
(a full disk is "File output failed."); the copy's OSError gives it (`FrameWriteError`).

Half-float storage (EXR half channels, float16 buffers): finite values beyond the half range
are clamped to ±`HALF_MAX` (`frame.clamp_to_half`) instead of becoming ±Inf, and counted
(`frame.beyond_half`) so callers report them, as they report NaN/Inf replaced on input. An Inf
or NaN that was in the input stays what it was (pass-through channels keep their bits).

The modules: `frame` (a Frame, its windows, channels and views; the half range), `metadata`
(shotstyle's attributes, the default colour space rule, header attributes), `reading`,
`writing`, `memoryfiles` (image bytes through memory), `oiiomessages`, and `payloads` (frames on
the wire ↔ Frames, decoding isolated in a child process).
"""
