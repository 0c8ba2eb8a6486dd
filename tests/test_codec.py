"""Frame payload framing: raw buffers and file bytes survive to_parts/from_parts exactly, and
every inconsistent descriptor is refused before anything is allocated."""

import numpy as np
import pytest

from shotstyle.plugin import codec, protocol
from shotstyle.plugin.protocol import ProtocolError


def raw_header(w=4, h=3, channels=("R", "G", "B", "A"), dtype="float16"):
    return {"width": w, "height": h, "channels": list(channels), "formats": ["half"] * len(channels),
            "dtype": dtype, "data_window": [0, 0, w, h], "display_window": [0, 0, w, h], "attributes": {}}


def test_raw_round_trip_is_zero_copy_and_exact():
    pixels = np.random.default_rng(0).standard_normal((3, 4, 4)).astype(np.float16)
    ef = codec.encode_raw(pixels, raw_header(), frame=1001)
    descs, payloads = codec.frames_to_message([ef])
    assert payloads[0].obj is pixels  # the payload is a view of the caller's array, not a copy
    header, parts = protocol.unpack(protocol.pack(protocol.request("stylize", frames=descs), payloads))
    back = codec.frames_from_message(header["frames"], parts)[0]
    assert back.frame == 1001 and back.kind == "raw"
    assert np.array_equal(np.frombuffer(back.data, np.float16).reshape(3, 4, 4), pixels)


def test_file_frames_keep_their_bytes_and_format(tmp_path):
    path = tmp_path / "plate.0001.exr"
    path.write_bytes(b"\x76\x2f\x31\x01 fake exr bytes")
    ef = codec.encode_file(str(path), frame=1)
    assert ef.header == {"format": "exr"} and bytes(ef.data) == path.read_bytes()
    desc, payload = codec.to_parts(ef)
    desc["part"] = 0
    back = codec.from_parts(desc, payload)
    out = tmp_path / "out.exr"
    codec.write_file(back, str(out))
    assert out.read_bytes() == path.read_bytes()
    assert codec.encode_file(b"x", "JPEG").header == {"format": "jpg"}
    with pytest.raises(ProtocolError, match="gif"):
        codec.encode_file(str(tmp_path / "a.gif"))


@pytest.mark.parametrize("change, code", [
    ({"width": protocol.MAX_FRAME_DIMENSION + 1}, "too_large"),
    ({"height": 10**9}, "too_large"),
    ({"width": 0}, "bad_message"),
    ({"width": True}, "bad_message"),
    ({"dtype": "float64"}, "bad_message"),
    ({"formats": ["half"]}, "bad_message"),
    ({"channels": []}, "bad_message"),
    ({"channels": ["C%d" % i for i in range(protocol.MAX_FRAME_CHANNELS + 1)]}, "too_large"),
    ({"data_window": [0, 0, 9, 9]}, "bad_message"),
    ({"display_window": [0, 0]}, "bad_message"),
])
def test_bad_raw_headers(change, code):
    header = {**raw_header(), **change}
    with pytest.raises(ProtocolError) as err:
        codec.check_raw_header(header)
    assert err.value.code == code


def test_size_mismatches_are_refused():
    pixels = np.zeros((3, 4, 4), np.float16)
    with pytest.raises(ProtocolError, match="describes"):
        codec.encode_raw(pixels[:2], raw_header())
    desc, payload = codec.to_parts(codec.encode_raw(pixels, raw_header(), frame=7))
    with pytest.raises(ProtocolError, match="frame 7") as err:
        codec.from_parts(desc, payload[:-2])
    assert err.value.code == "bad_message"
    with pytest.raises(ProtocolError, match="kind"):
        codec.from_parts({**desc, "kind": "jpeg2000"}, payload)
    with pytest.raises(ProtocolError, match="frame number"):
        codec.from_parts({**desc, "frame": "1001"}, payload)
    with pytest.raises(ProtocolError, match="C-contiguous"):
        codec.encode_raw(np.zeros((4, 3, 4), np.float16).transpose(1, 0, 2), raw_header())


def test_server_side_half_float_conversion_matches_numpy_bit_for_bit():
    import warnings

    from shotstyle.media.payloads import convert

    halves = np.arange(65536, dtype=np.uint16).view(np.float16)  # every half, NaN payloads included
    assert np.array_equal(convert(halves, "float32").view(np.uint32), halves.astype(np.float32).view(np.uint32))
    words = np.random.default_rng(3).integers(0, 2**32, 200000, dtype=np.uint64).astype(np.uint32)
    floats = np.concatenate([words, np.uint32(0x7F800001) + np.arange(0, 2**23, 997, dtype=np.uint32)]).view(np.float32)
    # numpy's conversion, except that finite values beyond the half range become ±65504, never ±Inf
    clamped = np.where(np.isfinite(floats), np.clip(floats, -65504, 65504), floats)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy warns on NaN/Inf comparisons
        expected = clamped.astype(np.float16)
    assert np.array_equal(convert(floats, "float16").view(np.uint16), expected.view(np.uint16))
    assert not np.isinf(convert(floats[np.isfinite(floats)], "float16")).any()
