"""Frames on the wire <-> frames in memory: codec.EncodedFrame <-> media.frame.Frame.

Raw buffers become Frames with numpy directly (no copy until the float32 conversion, never
through a file). File payloads (EXR bytes from hosts) are untrusted: they are decoded, in
memory, by `IsolatedDecoder` in a separate process, so a damaged file that crashes or hangs
the image library costs that helper process, never the server; the server answers
``bad_frame`` and starts a fresh helper.
"""

from __future__ import annotations

import multiprocessing
import signal
import threading
import warnings
from typing import Any, Optional

import numpy as np

from shotstyle.media.frame import Frame, beyond_half, clamp_to_half
from shotstyle.media.metadata import default_colourspace
from shotstyle.media.reading import decode_image_bytes
from shotstyle.media.writing import encode_exr_bytes, half_channels
from shotstyle.plugin.codec import EncodedFrame, encode_raw
from shotstyle.server.errors import FrameIOError, ShotstyleError

DECODE_TIMEOUT_S = 120.0
MAX_SOURCE_CHARS = 1000  # longest client file name quoted in an error


def _json_value(value: Any) -> Any:
    """``value`` as JSON-able data, or None when it has no JSON form (e.g. bytes)."""
    if isinstance(value, (str, bool, int)) or value is None:
        return value
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, np.generic):
        return _json_value(value.item())
    if isinstance(value, (list, tuple, np.ndarray)):
        items = [_json_value(v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
        return None if any(i is None for i in items) else items
    return None


def convert(pixels: np.ndarray, dtype: str) -> np.ndarray:
    """``pixels`` as a C-contiguous array of ``dtype``, bit for bit what numpy's astype gives.

    half <-> float goes through torch, several times faster than numpy's conversion (it is most
    of what a raw frame's round trip costs); NaNs are then converted by numpy so even their
    payload bits match and pass-through channels stay bit-exact. Finite values beyond the half
    range become ±65504 in float16, never ±Inf (`frame.clamp_to_half`).
    """
    target = np.dtype(dtype)
    if target == np.float16:
        pixels = clamp_to_half(pixels)
    if pixels.dtype == target or {pixels.dtype, target} != {np.dtype(np.float16), np.dtype(np.float32)}:
        return np.ascontiguousarray(pixels, dtype=target)
    import torch

    with warnings.catch_warnings():  # received buffers are read-only; torch only reads them here
        warnings.simplefilter("ignore", UserWarning)
        out = torch.from_numpy(np.ascontiguousarray(pixels)).to(getattr(torch, target.name)).numpy()
    nan = np.isnan(pixels)
    if nan.any():
        out[nan] = pixels[nan].astype(target)
    return out


def frame_from_raw(ef: EncodedFrame) -> Frame:
    """A Frame from a raw payload (codec.from_parts has checked its header and size).

    Half buffers stay half (`Frame.pixels` float16): the frame pipeline converts them on the
    device, and a reply in half needs no conversion back.

    Its colour space is the header's, else `metadata.default_colourspace` of its channel formats.
    """
    h = ef.header
    pixels = np.frombuffer(ef.data, dtype=h["dtype"]).reshape(h["height"], h["width"], len(h["channels"]))
    if not pixels.flags.writeable:  # still the received buffer: own a copy
        pixels = pixels.copy()
    return Frame(pixels=pixels, channels=list(h["channels"]),
                 channel_formats=list(h["formats"]), data_window=tuple(h["data_window"]),
                 display_window=tuple(h["display_window"]), attributes=dict(h.get("attributes", {})),
                 attribute_types=dict(h.get("attribute_types", {})),
                 colourspace=h.get("colourspace") or default_colourspace(list(h["formats"])))


def frame_to_raw(frame: Frame, dtype: str = "float32", number: Optional[int] = None) -> EncodedFrame:
    """A raw payload of ``frame`` (attributes without a JSON form are left out)."""
    pixels = convert(frame.pixels, dtype)
    attributes = {k: v for k, v in ((k, _json_value(v)) for k, v in frame.attributes.items()) if v is not None}
    header = {"width": int(pixels.shape[1]), "height": int(pixels.shape[0]), "channels": list(frame.channels),
              "formats": list(frame.channel_formats), "dtype": dtype,
              "data_window": [int(v) for v in frame.data_window],
              "display_window": [int(v) for v in frame.display_window], "attributes": attributes,
              "attribute_types": {k: v for k, v in frame.attribute_types.items() if k in attributes},
              "colourspace": frame.colourspace}
    return encode_raw(pixels, header, number)


def frame_to_file(frame: Frame, number: Optional[int] = None) -> EncodedFrame:
    """An EXR-bytes payload of ``frame`` (what write_frame would write)."""
    return EncodedFrame("file", {"format": "exr"}, encode_exr_bytes(frame), number)


def encode_like(frame: Frame, like: EncodedFrame, number: Optional[int] = None) -> EncodedFrame:
    """Encode ``frame`` the way ``like`` came in: raw (same dtype) or EXR bytes.

    ``extra["clamped"]`` says how many values were beyond the half-float range and clamped (here,
    or already by the frame pipeline: ``frame.clamped``).
    """
    if like.kind == "raw":
        dtype = like.header["dtype"]
        clamped = frame.clamped + (beyond_half(frame.pixels) if dtype == "float16" else 0)
        encoded = frame_to_raw(frame, dtype, number)
    else:
        clamped = frame.clamped + beyond_half(frame.pixels, half_channels(frame))
        encoded = frame_to_file(frame, number)
    if clamped:
        encoded.extra["clamped"] = clamped
    return encoded


def _decoder_main(conn: Any) -> None:
    """The helper process: decode image bytes until the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the server, which stops us itself
    while True:
        try:
            fmt, colourspace = conn.recv()
            data = conn.recv_bytes()
        except EOFError:
            return
        try:
            conn.send(("ok", decode_image_bytes(data, fmt, colourspace)))
        except ShotstyleError as exc:
            conn.send(("error", str(exc)))
        except Exception as exc:  # any library error is still this frame's problem, not the server's
            conn.send(("error", f"received {fmt} image: cannot decode ({type(exc).__name__}: {exc})"))


class IsolatedDecoder:
    """Decodes untrusted image bytes in a helper process (restarted after a crash or hang)."""

    def __init__(self, timeout: float = DECODE_TIMEOUT_S):
        self.timeout = timeout
        self._context = multiprocessing.get_context("spawn")
        self._process: Any = None
        self._conn: Any = None
        self._lock = threading.Lock()

    def _start(self) -> None:
        parent, child = self._context.Pipe()
        self._process = self._context.Process(target=_decoder_main, args=(child,), daemon=True,
                                              name="shotstyle-decoder")
        self._process.start()
        child.close()
        self._conn = parent

    def _stop(self) -> None:
        if self._process is not None:
            self._conn.close()
            self._process.kill()
            self._process.join(5)
            self._process = None

    def decode(self, data: Any, fmt: str, colourspace: Optional[str] = None) -> Frame:
        """A Frame from image file bytes, decoded in the helper process."""
        with self._lock:
            if self._process is None or not self._process.is_alive():
                self._start()
            try:
                self._conn.send((fmt, colourspace))
                self._conn.send_bytes(data)
                if not self._conn.poll(self.timeout):
                    self._stop()
                    raise FrameIOError(f"received {fmt} image: decoding took over {self.timeout:.0f} s; "
                                       "the file is probably damaged")
                status, value = self._conn.recv()
            except (EOFError, OSError, BrokenPipeError):
                code = self._process.exitcode if self._process is not None else None
                self._stop()
                raise FrameIOError(f"received {fmt} image ({memoryview(data).nbytes} bytes): the image "
                                   f"reader crashed on it (exit {code}); the file is damaged") from None
        if status != "ok":
            raise FrameIOError(value)
        return value

    def frame(self, ef: EncodedFrame, colourspace: Optional[str] = None) -> Frame:
        """The Frame of any payload: raw buffers directly, files through the helper process."""
        if ef.kind == "raw":
            frame = frame_from_raw(ef)
            frame.colourspace = colourspace or frame.colourspace
            return frame
        source = ef.extra.get("source")  # the file the client sent, when it says (codec.encode_file)
        if not (isinstance(source, str) and source.isprintable() and 0 < len(source) <= MAX_SOURCE_CHARS):
            source = None
        try:
            frame = self.decode(ef.data, ef.header["format"], colourspace)
        except FrameIOError as exc:
            if source is not None:
                raise FrameIOError(f"{source}: {exc}") from None
            raise
        frame.source = source  # so later messages about the frame name that file
        return frame

    def close(self) -> None:
        with self._lock:
            self._stop()
