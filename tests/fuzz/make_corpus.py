"""Write the fuzz regression corpus: ``python -m tests.fuzz.make_corpus [decoder ...]``.

Each case is built from valid messages (encoded through wire.py and the codecs, so a wire
change is picked up by running this again) plus the inputs that crashed a decoder while the
fuzzers were written. Every case names the outcome it must have; the script classifies each
one with its decoder's ``classify`` and refuses to write a corpus whose outcomes differ, so
regenerating after a change shows exactly which expectations moved. The files are replayed by
test_corpus.py on every run.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from interlock import modbus_codec as codec
from models import manifest as mf
from tests.fuzz import (
    harness,
    test_command,
    test_config,
    test_frame,
    test_manifest,
    test_modbus,
    test_monitor_message,
    test_opcua,
    test_reply,
    test_sim_control,
    wire,
)
from tests.fuzz.harness import Case
from tripwire import config as c
from tripwire import messages as m

CLASSIFIERS: dict[str, harness.Classifier] = {
    "frame": test_frame.classify,
    "monitor": test_monitor_message.classify,
    "command": test_command.classify,
    "reply": test_reply.classify,
    "sim_control": test_sim_control.classify,
    "modbus": test_modbus.classify,
    "opcua": test_opcua.classify,
    "config": test_config.classify,
    "manifest": test_manifest.classify,
}

DEEP = harness.nested(1500)  # beyond the recursion limit (1000) however shallow the caller


def frame_cases() -> Iterator[Case]:
    good = wire.encode_frame(wire.sample_frame())
    edit = wire.frame_with_field

    def sealed(field: str, value: object, frame: harness.Parts = good) -> harness.Parts:
        return wire.reseal_frame(edit(frame, field, value))

    yield Case("valid", "accept", good, "source 1, 4 x 128 samples")
    yield Case("one_part", "reject bad_parts", good[:1])
    yield Case("header_short", "reject bad_header_size", [good[0][:-1], good[1]])
    yield Case("payload_bit", "reject bad_crc", [good[0], harness.apply_ops(good[1], [("flip", 77, 3)])])
    yield Case("header_bit", "reject bad_crc", [harness.apply_ops(good[0], [("flip", 40, 0)]), good[1]])
    yield Case("magic", "reject bad_magic", sealed("magic", b"TWXX"))
    yield Case("version", "reject bad_version", sealed("version", 0xFFFF))
    yield Case("dtype", "reject bad_dtype", sealed("dtype", 2))
    yield Case("no_channels", "reject bad_shape", sealed("channels", 0))
    yield Case("too_many_samples", "reject bad_shape", sealed("samples", m.MAX_SAMPLES + 1))
    yield Case("shape_vs_payload", "reject size_mismatch", sealed("channels", 3))
    for name, rate in (("nan", math.nan), ("zero", 0.0), ("negative", -6400.0), ("inf", math.inf)):
        yield Case(f"rate_{name}", "reject bad_rate", sealed("sample_rate_hz", rate))
    yield Case("other_cell", "reject wrong_address", sealed("dest", m.cell_address("cell-2")))
    yield Case("masquerade", "reject masquerade", sealed("origin", m.source_key(1, "fan-2")))
    yield Case("unaddressed", "reject wrong_address",
               wire.reseal_frame(edit(edit(good, "dest", 0), "origin", 0)))
    yield Case("unknown_source", "reject unknown_source",
               wire.encode_frame(wire.sample_frame(source_id=3)))
    yield Case("channel_count", "reject bad_channels",
               wire.encode_frame(wire.sample_frame(channels=2)))
    yield Case("config_rate", "reject bad_rate", wire.encode_frame(wire.sample_frame(rate_hz=6000.0)))
    yield Case("length", "reject bad_length", wire.encode_frame(wire.sample_frame(samples=64)))
    frame = wire.sample_frame()
    frame.samples[2, 5] = math.nan
    yield Case("nan_sample", "reject non_finite", wire.encode_frame(frame))
    frame = wire.sample_frame()
    frame.samples[0, 0] = 1e5
    yield Case("out_of_range", "reject out_of_range", wire.encode_frame(frame))
    frame = wire.sample_frame()
    frame.samples[1, :] = 0.25
    yield Case("frozen_channel", "accept", wire.encode_frame(frame), "flagged SENSOR_FROZEN")
    yield Case("nonzero_flags", "accept", sealed("flags", 0xFF), "flags and reserved are ignored")


def monitor_cases() -> Iterator[Case]:
    verdict = wire.encode_verdict(wire.sample_verdict())
    beat = wire.encode_heartbeat(wire.sample_heartbeat())

    def sealed(data: bytes, field: str, value: object) -> harness.Parts:
        return [wire.reseal_message(wire.message_with_field(data, field, value))]

    yield Case("verdict", "accept verdict", [verdict])
    yield Case("verdict_ok_no_channels", "accept verdict",
               [wire.encode_verdict(wire.sample_verdict(m.Level.OK, ()))])
    yield Case("heartbeat", "accept heartbeat", [beat])
    yield Case("two_parts", "reject bad_parts", [verdict, beat])
    yield Case("empty", "reject bad_magic", [b""])
    yield Case("magic", "reject bad_magic", [b"TWXX" + verdict[4:]])
    yield Case("verdict_short", "reject truncated", [verdict[:20]])
    yield Case("verdict_bit", "reject bad_crc", [harness.apply_ops(verdict, [("flip", 30, 2)])])
    yield Case("heartbeat_bit", "reject bad_crc", [harness.apply_ops(beat, [("flip", 30, 2)])])
    yield Case("verdict_text_len", "reject size_mismatch", sealed(verdict, "text_len", 200))
    yield Case("verdict_extended", "reject size_mismatch",
               [wire.reseal_message(verdict[:-4] + b"\x00" * 8)])
    yield Case("heartbeat_extended", "reject size_mismatch", [beat + b"\x00"])
    yield Case("verdict_version", "reject bad_version", sealed(verdict, "version", 1))
    yield Case("heartbeat_version", "reject bad_version", sealed(beat, "version", 0xFFFF))
    yield Case("verdict_level", "reject bad_level", sealed(verdict, "level", 3))
    yield Case("verdict_other_cell", "reject wrong_address",
               sealed(verdict, "dest", m.cell_address("cell-2")))
    yield Case("verdict_other_monitor", "reject masquerade", sealed(verdict, "origin", m.monitor_key(2)))
    yield Case("heartbeat_other_monitor", "reject masquerade", sealed(beat, "origin", m.monitor_key(2)))
    bad_text = wire.encode_verdict(wire.sample_verdict(channels=("vib_x",)))
    bad_text = wire.reseal_message(bad_text[:-9] + b"\xff\xfe\xfd\xfc\xfb" + bad_text[-4:])
    yield Case("verdict_text_not_utf8", "accept verdict", [bad_text], "decoded with replacement")
    yield Case("verdict_flags_high", "accept verdict", sealed(verdict, "flags", 0xFFFF),
               "bits above the defined flags are dropped")


def command_cases() -> Iterator[Case]:
    v = m.VERSION
    for cmd in ("status", "reset", "trip", "acknowledge", "shutdown"):
        yield Case(cmd, f"accept {cmd}", test_command.valid_request(cmd, token="t", reason="r"))
    yield Case("inhibit", "reject unsupported_command", test_command.valid_request("inhibit"))
    yield Case("two_parts", "reject bad_command", [b"{}", b"{}"])
    yield Case("not_utf8", "reject bad_json", [b'{"v":\xff}'])
    yield Case("garbage", "reject bad_json", [b"{v:2"])
    yield Case("deep_nesting", "reject bad_json", [DEEP], "RecursionError escaped before the fix")
    yield Case("digits", "reject bad_json", [b'{"v":' + b"9" * 5000 + b"}"],
               "ValueError (int max str digits) escaped before the fix")
    yield Case("not_object", "reject bad_command", [b"[1,2]"])
    yield Case("old_version", "reject bad_version", [json.dumps({"v": 1, "cmd": "status"}).encode()])
    yield Case("no_version", "reject bad_version", [b'{"cmd":"status"}'])
    yield Case("unknown", "reject unknown_command", [json.dumps({"v": v, "cmd": "bypass"}).encode()])
    yield Case("cmd_list", "reject unknown_command", [json.dumps({"v": v, "cmd": []}).encode()],
               "TypeError (unhashable) escaped before the fix and tripped the machine")
    yield Case("cmd_object", "reject unknown_command", [json.dumps({"v": v, "cmd": {}}).encode()])
    yield Case("token_number", "reject bad_command",
               [json.dumps({"v": v, "cmd": "reset", "token": 5}).encode()])
    yield Case("long_reason", "accept trip", test_command.valid_request("trip", reason="r" * 5000),
               "the reason is cut to 200 characters")


def reply_cases() -> Iterator[Case]:
    status = test_reply.status_reply()
    ok = m.encode_reply
    yield Case("status", "accept good figures", [ok(True, **status)])
    yield Case("ok_plain", "accept good", [ok(True, state="TRIPPED")])
    yield Case("refused", "accept refused", [ok(False, error="bad_token", detail="wrong token")])
    yield Case("unknown", "accept not_supported", [ok(False, error="unknown_command", detail="'x'")])
    yield Case("not_json", "reject bad_json", [b"\x00\x01"])
    yield Case("deep_nesting", "reject bad_json", [DEEP])
    yield Case("no_ok", "reject bad_reply", [json.dumps({"v": m.VERSION}).encode()])
    yield Case("ok_number", "reject bad_reply", [json.dumps({"v": m.VERSION, "ok": 1}).encode()])
    yield Case("old_version", "reject bad_reply", [json.dumps({"v": 1, "ok": True}).encode()])
    for name, field, value in (
        ("latency_total_nan", "total", math.nan),
        ("latency_max_huge", "max", -(10**400)),
        ("latency_total_huge", "total", 2**64),
        ("latency_idx_out_of_range", "idx", [10**6, 1, 2]),
        ("latency_idx_negative", "idx", [-1, 1, 2]),
        ("latency_n_negative", "n", [-5, 1, 1]),
    ):
        bad = dict(status, latency={**status["latency"], field: value})
        yield Case(name, "accept good", [json.dumps({"v": m.VERSION, "ok": True, **bad}).encode()],
                   "no figures: OverflowError escaped parse_status before the fix")
    yield Case("deadline_misses_inf", "accept good",
               [b'{"v":%d,"ok":true,"state":"ARMED","latency":{"idx":[],"n":[],"min":0,'
                b'"max":0,"total":0},"counters":{"deadline_misses":1e400}}' % m.VERSION])


def sim_control_cases() -> Iterator[Case]:
    req = test_sim_control.request
    yield Case("status", "accept status", req("status", since=0))
    yield Case("schedule", "accept schedule", req("schedule"))
    yield Case("stop", "accept stop", req("stop"))
    yield Case("clear", "accept clear", req("clear", source=1))
    yield Case("inject", "accept inject", req("inject", kind="bearing", source=1, severity=2.0))
    yield Case("two_parts", "reject expected one message part, got 2", [b"{}", b"{}"])
    yield Case("too_large", "reject request too large (5000 bytes)", [b" " * 5000])
    yield Case("deep_nesting", "reject bad_json", [harness.nested(2000)],
               "RecursionError escaped before the fix (4000 bytes: under the size limit)")
    yield Case("not_object", "reject bad_request", [b"[]"])
    yield Case("version", "reject bad_version", req("status", v=1))
    yield Case("cmd_number", "reject bad_request", req(5))
    yield Case("unknown", "reject unknown_command", req("explode"))
    yield Case("since_negative", "reject bad_request", req("status", since=-1))
    yield Case("since_bool", "reject bad_request", req("status", since=True))
    yield Case("inject_kind", "reject bad_request", req("inject", kind="melt", source=1))
    yield Case("inject_ramp_huge", "reject bad_request",
               [b'{"cmd":"inject","kind":"spike","source":2,"ramp_s":-1' + b"0" * 400 + b"}"],
               "OverflowError (math.isfinite of a huge int) escaped before the fix")
    yield Case("inject_severity_nan", "reject bad_request",
               [b'{"cmd":"inject","kind":"spike","source":2,"severity":NaN}'])


def modbus_cases() -> Iterator[Case]:
    coil = codec.write_single_coil(7, 1, 0, False)
    reg = codec.write_single_register(8, 1, 1, 41)
    rcoils = codec.read_coils(9, 1, 0, 11)
    rregs = codec.read_holding_registers(10, 1, 0, 3)
    bits = (1, 0, 1, 1, 0, 0, 0, 1, 1, 0, 1)
    rc_reply = codec.encode_reply(rcoils, bits)
    rr_reply = codec.encode_reply(rregs, (300, 0, 65535))

    def x(request: codec.Request, reply: bytes) -> harness.Parts:
        return [request.encode(), reply]

    def with_byte(data: bytes, pos: int, value: int) -> bytes:
        return data[:pos] + bytes([value]) + data[pos + 1:]

    fix = test_modbus.fix_length
    yield Case("coil_echo", "accept", x(coil, coil.encode()))
    yield Case("register_echo", "accept", x(reg, reg.encode()))
    yield Case("read_coils", "accept", x(rcoils, rc_reply))
    yield Case("read_coils_padding", "accept", x(rcoils, rc_reply[:-1] + bytes([rc_reply[-1] | 0xF8])),
               "unused bits of the last byte are ignored")
    yield Case("read_registers", "accept", x(rregs, rr_reply))
    yield Case("next_message_glued", "accept", x(coil, coil.encode() + reg.encode()),
               "the writer reads exactly the announced length")
    yield Case("one_part", "reject bad_parts", [coil.encode()])
    yield Case("empty", "reject truncated", x(coil, b""))
    yield Case("header_only", "reject truncated", x(coil, coil.encode()[:7]))
    yield Case("short_body", "reject truncated", x(coil, coil.encode()[:-1]))
    yield Case("protocol", "reject mismatch:protocol", x(coil, with_byte(coil.encode(), 3, 1)))
    yield Case("length_small", "reject mismatch:length", x(coil, with_byte(coil.encode(), 5, 1)))
    yield Case("length_huge", "reject mismatch:length", x(coil, with_byte(coil.encode(), 4, 0xFF)))
    yield Case("transaction", "reject mismatch:transaction_id", x(coil, with_byte(coil.encode(), 1, 8)))
    yield Case("unit", "reject mismatch:unit", x(coil, with_byte(coil.encode(), 6, 2)))
    yield Case("function", "reject mismatch:function", x(coil, with_byte(coil.encode(), 7, 6)))
    yield Case("exception", "reject exception_reply", x(coil, codec.encode_exception(coil, 4)))
    yield Case("exception_unknown_code", "reject exception_reply",
               x(coil, codec.encode_exception(coil, 0x7F)))
    yield Case("exception_long", "reject mismatch:length",
               x(coil, fix(codec.encode_exception(coil, 4) + b"\x00")))
    yield Case("echo_address", "reject bad_echo", x(coil, with_byte(coil.encode(), 9, 1)))
    yield Case("echo_value", "reject bad_echo", x(coil, with_byte(coil.encode(), 10, 0xFF)))
    yield Case("echo_long", "reject mismatch:pdu_length", x(coil, fix(coil.encode() + b"\x00")))
    yield Case("echo_short", "reject truncated", x(reg, fix(reg.encode()[:-1])))
    yield Case("byte_count", "reject mismatch:byte_count", x(rregs, with_byte(rr_reply, 8, 4)))
    yield Case("read_long", "reject mismatch:pdu_length", x(rregs, fix(rr_reply + b"\x00\x00")))
    yield Case("read_short", "reject truncated", x(rregs, fix(rr_reply[:-2])))
    yield Case("reply_to_other", "reject mismatch:transaction_id", x(coil, reg.encode()))


def opcua_cases() -> Iterator[Case]:
    w, f = test_opcua.write_response, test_opcua.service_fault
    yield Case("good", "accept", [w([0])])
    yield Case("good_info_bits", "accept", [w([0x00000400])], "info bits are not the code")
    yield Case("good_trailing", "accept", [w([0]) + b"\x00\x01"], "asyncua ignores trailing bytes")
    yield Case("bad_type_mismatch", "reject WriteRefused", [w([0x80740000])])
    yield Case("uncertain", "reject WriteRefused", [w([0x40000000])])
    yield Case("completes_async", "reject WriteRefused", [w([0x002E0000])],
               "Good_CompletesAsynchronously is not a confirmation")
    yield Case("code_not_zero", "reject WriteRefused", [w([0x12345678])],
               "asyncua names it Good (severity 00); the code part is not 0")
    yield Case("service_bad", "reject WriteRefused", [w([0], 0x80000000)])
    yield Case("service_uncertain", "reject WriteRefused", [w([0], 0x40000000)])
    yield Case("service_fault", "reject WriteRefused", [f(0x80010000)])
    yield Case("service_fault_good", "reject BadReply", [f(0) + w([0])[-12:]],
               "a Good ServiceFault passes asyncua; its tail read as one Good result")
    yield Case("service_completes_async", "reject WriteRefused", [w([0], 0x002E0000)],
               "asyncua's own write accepted a Good-severity service result")
    yield Case("no_results", "reject BadReply", [w([])])
    yield Case("two_results", "reject BadReply", [w([0, 0])])
    yield Case("null_results", "reject BadReply", [w(None)],
               "array length -1 decodes as None: TypeError (len) escaped before the fix")
    yield Case("nodeid_encoding", "reject BadReply",
               [bytes.fromhex("b100a40228faa5ae667fdd0100000000000000000000f8000000000001000000")],
               "ValueError (NodeIdType) from asyncua escaped before the fix")
    yield Case("struct_error", "reject BadReply", [bytes.fromhex("8000a4bdce9dedae55")],
               "struct.error from asyncua escaped before the fix")
    yield Case("ord_error", "reject BadReply", [bytes.fromhex(
        "0100b40228faa5ae667fdd0100000000000000000300000000000000010200000000000000000000bebe3f636600")],
        "TypeError from asyncua escaped before the fix")
    yield Case("truncated", "reject TargetUnavailable", [w([0])[:-3]],
               "NotEnoughData is a UaError: taken as a broken connection")
    yield Case("empty", "reject TargetUnavailable", [b""])
    yield Case("two_parts", "reject bad_parts", [w([0]), w([0])])


def config_cases() -> Iterator[Case]:
    good = c.dumps_toml(test_config.valid_tree())

    def toml(text: str) -> harness.Parts:
        return [text.encode("utf-8")]

    def replace(old: str, new: str) -> harness.Parts:
        assert old in good, old
        return toml(good.replace(old, new, 1))

    yield Case("valid", "accept", toml(good))
    yield Case("minimal", "accept", toml('[[sources]]\nid = 1\nname = "a"\nchannels = ["x"]\n'))
    yield Case("control_chars", "accept", replace('reset_token = ""', r'reset_token = "a\u0000\nb"'),
               "dumps_toml wrote control characters raw before the fix: the child could not load")
    yield Case("two_parts", "reject bad_parts", [b"", b""])
    yield Case("not_utf8", "reject file: not UTF-8 text", [good.encode() + b"\xff"],
               "UnicodeDecodeError escaped load before the fix")
    yield Case("syntax", "reject file: not valid TOML", toml("[sources\n"))
    yield Case("deep_array", "reject file: not valid TOML", [b"x = " + DEEP + b"\n"],
               "RecursionError escaped load before the fix")
    yield Case("digits", "reject file: not valid TOML", [b"x = " + b"9" * 5000 + b"\n"],
               "ValueError (int max str digits) escaped load before the fix")
    yield Case("empty", "reject sources", toml(""))
    yield Case("unknown_key", "reject monitor.colour", replace("[monitor]\n", '[monitor]\ncolour = "red"\n'))
    yield Case("missing_name", "reject sources[0].name", toml("[[sources]]\nid = 1\nchannels = ['x']\n"))
    yield Case("wrong_type", "reject interlock.deadline_ms",
               replace("deadline_ms = 10.0", 'deadline_ms = "ten"'))
    yield Case("float_overflow", "reject sources[0].sample_rate_hz",
               replace("sample_rate_hz = 6400.0", "sample_rate_hz = 1" + "0" * 400),
               "OverflowError (float of a huge integer) escaped before the fix")
    yield Case("nan", "reject interlock.deadline_ms", replace("deadline_ms = 10.0", "deadline_ms = nan"))
    yield Case("source_id_wide", "reject sources[0].id", replace("id = 1\n", "id = 4294967296\n"),
               "accepted before: the sim could not encode its frames")
    yield Case("monitor_id_negative", "reject monitor.monitor_id",
               replace("monitor_id = 1", "monitor_id = -1"))
    yield Case("coil_wide", "reject interlock.modbus.permit_coil",
               replace("permit_coil = 0", "permit_coil = 65536"),
               "accepted before: every stop write raised ValueError in the codec")
    yield Case("literal", "reject interlock.targets[0]", replace('targets = ["modbus", "opcua"]',
                                                                'targets = ["profibus"]'))
    yield Case("datetime", "reject sim.seed", replace("seed = 0", "seed = 2026-01-01T00:00:00"))
    yield Case("liveness", "reject interlock.liveness_ms", replace("liveness_ms = 9.0", "liveness_ms = 11.0"))


def manifest_cases(workdir: Path) -> Iterator[Case]:
    plain, tiered = test_manifest.valid_manifests(workdir)
    model = test_manifest.MODEL
    dumps, signed = test_manifest.dumps, test_manifest.signed

    def edited(**fields: object) -> harness.Parts:
        return [dumps(signed({**plain, **fields})), model]

    def raw(text: bytes) -> harness.Parts:
        return [text, model]

    yield Case("plain", "accept", [dumps(plain), model])
    yield Case("tiered", "accept", [dumps(tiered), model])
    yield Case("two_parts_missing", "reject bad_parts", [dumps(plain)])
    yield Case("not_utf8", "reject BundleMissing", raw(dumps(plain) + b"\xff"))
    yield Case("not_json", "reject ManifestError <root>", raw(b"{"))
    yield Case("nan_constant", "reject ManifestError <root>", raw(b'{"threshold": NaN}'))
    yield Case("deep_nesting", "reject ManifestError <root>", raw(DEEP),
               "RecursionError escaped load_bundle before the fix")
    yield Case("digits", "reject ManifestError <root>", raw(b'{"format":' + b"1" * 5000 + b"}"),
               "ValueError (int max str digits) escaped load_bundle before the fix")
    yield Case("not_object", "reject ManifestError <root>", raw(b"[]"))
    yield Case("format", "reject ManifestError format", edited(format=2))
    yield Case("kind", "reject ManifestError kind", edited(kind="oracle"))
    yield Case("created", "reject ManifestError created", edited(created="yesterday"))
    yield Case("threshold_huge_int", "reject ManifestError threshold", edited(threshold=10**400),
               "OverflowError (float of a huge integer) escaped before the fix")
    yield Case("threshold_zero", "reject ManifestError threshold", edited(threshold=0))
    yield Case("target_far_huge_int", "reject ManifestError calibration.target_far",
               edited(calibration={**plain["calibration"], "target_far": 10**400}))
    yield Case("shape", "reject ManifestError inputs.features[1]",
               edited(inputs={mf.INPUT_NAME: [None, 0]}))
    yield Case("signature_altered", "reject SignatureError", [dumps({**plain, "threshold": 9.0}), model])
    yield Case("signature_non_ascii", "reject SignatureError", [dumps({**plain, "signature": "é" * 64}), model],
               "TypeError (compare_digest on non-ASCII str) escaped verify before the fix")
    spec = plain["feature_spec"]
    yield Case("spec_rate_huge_int", "reject ManifestError feature_spec",
               edited(feature_spec={**spec, "sample_rate_hz": 10**400}),
               "OverflowError escaped FeatureSpec.from_dict before the fix")
    yield Case("spec_features_number", "reject ManifestError feature_spec",
               edited(feature_spec={**spec, "features": 5}),
               "TypeError (list of an int) escaped FeatureSpec.from_dict before the fix")
    yield Case("spec_window", "reject ManifestError feature_spec",
               edited(feature_spec={**spec, "window": 100}))
    yield Case("model_altered", "reject IntegrityError", [dumps(plain), model + b"\x00"])
    garbage = b"not an onnx graph"
    sha = hashlib.sha256(garbage).hexdigest()
    yield Case("graph_garbage", "reject GraphMismatch",
               [dumps(signed({**plain, "sha256": sha, "model_id": mf.model_id_for(sha)})), garbage])
    yield Case("tier_missing_file", "reject BundleMissing",
               [dumps(signed(_retiered(tiered, "b"))), model])
    yield Case("tier_name", "reject ManifestError tiers.B", [dumps(signed(_retiered(tiered, "B"))), model])


def _retiered(tiered: dict[str, object], name: str) -> dict[str, object]:
    entry = dict(tiered["tiers"]["a"])
    entry["file"] = mf.tier_file(name)
    return {**tiered, "tiers": {name: entry}, "default_tier": name}


def cases(decoder: str, workdir: Path) -> list[Case]:
    makers: dict[str, Callable[[], Iterator[Case]]] = {
        "frame": frame_cases, "monitor": monitor_cases, "command": command_cases,
        "reply": reply_cases, "sim_control": sim_control_cases, "modbus": modbus_cases,
        "opcua": opcua_cases, "config": config_cases,
        "manifest": lambda: manifest_cases(workdir),
    }
    return list(makers[decoder]())


def check(decoder: str, made: list[Case], workdir: Path) -> list[str]:
    """Every case's actual outcome against its expectation; the differences."""
    problems = []
    for case in made:
        got = CLASSIFIERS[decoder](case.parts, workdir)
        if got != case.expect:
            problems.append(f"{decoder}/{case.name}: expected {case.expect!r}, got {got!r}")
    return problems


def main(argv: list[str]) -> int:
    decoders = argv or list(CLASSIFIERS)
    unknown = sorted(set(decoders) - set(CLASSIFIERS))
    if unknown:
        print(f"unknown decoder(s) {unknown}; known: {sorted(CLASSIFIERS)}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="tw-corpus-") as tmp:
        workdir = Path(tmp)
        made = {d: cases(d, workdir) for d in decoders}
        problems = [p for d in decoders for p in check(d, made[d], workdir)]
        if problems:
            print("not written, outcomes differ from the expectations:", file=sys.stderr)
            print("\n".join(problems), file=sys.stderr)
            return 1
    for d in decoders:
        directory = harness.CORPUS / d
        for old in directory.glob("*.case"):
            old.unlink()
        for case in made[d]:
            harness.write_case(directory, case)
        print(f"{d}: {len(made[d])} cases in {directory}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
