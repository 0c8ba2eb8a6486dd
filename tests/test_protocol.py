"""The wire protocol module: header round trips, version and shape checks, limits, op table."""

import json

import pytest

from shotstyle.plugin import params, protocol
from shotstyle.plugin.protocol import ProtocolError


def test_request_round_trip_keeps_every_field():
    header = protocol.request(protocol.OP_STYLIZE, {"model": "look", "mix": 0.5}, [{"part": 0, "kind": "raw"}])
    decoded, payloads = protocol.unpack(protocol.pack(header, [b"abc"]))
    assert decoded == header
    assert bytes(payloads[0]) == b"abc"
    assert protocol.check_request(decoded) == (protocol.OP_STYLIZE, {"model": "look", "mix": 0.5})


def test_version_mismatch_names_both_versions():
    data = json.dumps({"v": 99, "id": "a", "op": "hello"}).encode()
    with pytest.raises(ProtocolError) as err:
        protocol.decode_header(data)
    assert err.value.code == "version_mismatch"
    assert "99" in err.value.message and str(protocol.PROTOCOL_VERSION) in err.value.message


@pytest.mark.parametrize("data, code", [
    (b"\xff\xfe not json", "bad_message"),
    (b"[1, 2]", "bad_message"),
    (b'{"v": 1}', "bad_message"),                                 # no id
    (b'{"v": 1, "id": ""}', "bad_message"),
    (b'{"v": 1, "id": "x", "frames": "nope"}', "bad_message"),
    (b" " * (protocol.MAX_HEADER_BYTES + 1), "too_large"),
])
def test_bad_headers_are_refused_with_a_code(data, code):
    with pytest.raises(ProtocolError) as err:
        protocol.decode_header(data)
    assert err.value.code == code


def test_unknown_op_and_bad_args():
    with pytest.raises(ProtocolError) as err:
        protocol.check_request({"op": "format_disk"})
    assert err.value.code == "unknown_op" and "hello" in err.value.message
    with pytest.raises(ProtocolError) as err:
        protocol.check_request({"op": "hello", "args": [1]})
    assert err.value.code == "bad_message"


def test_frame_descriptor_pointing_past_the_parts_is_a_truncated_message():
    header = protocol.request(protocol.OP_STYLIZE, frames=[{"part": 1}])
    with pytest.raises(ProtocolError) as err:
        protocol.unpack(protocol.pack(header, [b"only one part"]))
    assert err.value.code == "bad_message" and "truncated" in err.value.message


def test_nan_is_never_put_on_the_wire():
    with pytest.raises(ValueError):
        protocol.encode_header({"v": 1, "id": "a", "x": float("nan")})


def test_every_documented_code_has_a_description_and_every_op_is_listed():
    assert all(isinstance(text, str) and text for text in protocol.ERROR_CODES.values())
    assert protocol.IDEMPOTENT_OPS <= set(protocol.OPS)
    assert protocol.OP_TRAIN not in protocol.IDEMPOTENT_OPS
    assert protocol.LIMITS["max_jobs_per_client"] == protocol.MAX_JOBS_PER_CLIENT
    with pytest.raises(AssertionError):
        ProtocolError("no_such_code", "x")


def test_params_describe_is_json_and_validate_checks_ranges():
    description = json.loads(json.dumps(params.describe()))
    names = {p["name"] for p in description["params"]}
    assert {"server", "model", "strength", "steps", "resolution", "mix", "keyframes", "colourspace", "tile",
            "loss", "arch"} <= names
    assert [c["name"] for c in description["clips"]] == ["plate", "style", "preview"]
    assert params.validate({"steps": "20", "early_stop": "yes", "keyframes": "1,3-5"}) == \
        {"steps": 20, "early_stop": True, "keyframes": "1,3-5"}
    full = params.validate({}, partial=False)
    assert full["arch"] == "hrnet-fast" and full["mix"] == 1.0
    for bad, name in [({"mix": 2}, "mix"), ({"loss": "gram"}, "loss"), ({"steps": 1.5}, "steps"),
                      ({"keyframes": "a-b"}, "keyframes"), ({"stepz": 3}, "stepz"), ({"mix": float("nan")}, "mix")]:
        with pytest.raises(ValueError, match=name):
            params.validate(bad)


def test_frame_args_travel_as_the_stylize_ops_documented_arguments():
    """What a frame is stylized with: each value checked by its parameter's rule when made, "auto"
    meaning the server decides, and the op's arguments read back as they were written."""
    args = params.FrameArgs(0.25, "ACEScg", "ACEScct", 4096)
    assert params.FrameArgs.from_values({"model": "look", **args.wire()}) == args
    assert params.FrameArgs.from_values({"mix": "0.5", "colourspace": "auto", "tile": 0}) == params.FrameArgs(0.5)
    assert params.FrameArgs().wire() == {"mix": 1.0}
    documented = {name.removesuffix("?") for name in protocol.OP_SPECS[protocol.OP_STYLIZE].args}
    assert set(args.wire()) | {"model"} <= documented
    for bad, name in [({"mix": 1.5}, "mix"), ({"tile": -1}, "tile"), ({"colourspace": 3}, "colourspace"),
                      ({"out_colourspace": 3}, "out_colourspace"), ({"mix": float("inf")}, "mix")]:
        with pytest.raises(ValueError, match=name):
            params.FrameArgs.from_values(bad)
