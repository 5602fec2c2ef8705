#!/usr/bin/env python3
"""test/fuzz/make_seeds.py DIR: write the fuzz seed corpus (standard library only).

Valid files of every float dtype, a scalar, an empty tensor, metadata, header
padding and an empty file list, plus edge cases the parser must reject:
truncation, an oversized header length, overlapping and gapped offsets, an
unknown dtype, a shape whose product overflows, a NaN, deep nesting.
"""
import json
import os
import struct
import sys


def st_file(tensors, metadata=None, pad=True, raw_header=None):
    """tensors: list of (name, dtype, shape, bytes); offsets laid out in order."""
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    data = b""
    for name, dtype, shape, blob in tensors:
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(data), len(data) + len(blob)]}
        data += blob
    h = raw_header if raw_header is not None else json.dumps(header, separators=(",", ":")).encode()
    if pad:
        h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + data


def f32(*v):
    return struct.pack("<%df" % len(v), *v)


def main(out):
    os.makedirs(out, exist_ok=True)
    seeds = {
        "ae_f32": st_file([("encoder.0.weight", "F32", [2, 3], f32(1, 2, 3, 4, 5, 6)),
                           ("encoder.0.bias", "F32", [2], f32(0.5, -0.5)),
                           ("decoder.0.weight", "F32", [3, 2], f32(*range(6))),
                           ("decoder.0.bias", "F32", [3], f32(0, 0, 0))],
                          {"anomaly.kind": "autoencoder", "anomaly.activations": "tanh,identity"}),
        "f16": st_file([("x", "F16", [4], struct.pack("<4e", 1.0, -2.5, 6.1e-5, 65504.0))]),
        "bf16": st_file([("x", "BF16", [2], bytes([0x80, 0x3f, 0x00, 0xc0]))]),
        "f64": st_file([("x", "F64", [2, 1], struct.pack("<2d", 3.25, -1e-300))]),
        "scalar": st_file([("s", "F32", [], f32(7))]),
        "empty_tensor": st_file([("z", "F32", [0, 5], b""), ("y", "F32", [1], f32(1))]),
        "no_tensors": st_file([]),
        "metadata_only": st_file([], {"a": "b", "unicode": "\u00e9\u4e2d"}),
        "int_dtypes": st_file([("i", "I64", [1], struct.pack("<q", 5)),
                               ("b", "BOOL", [2], b"\x01\x00")]),
        "unpadded": st_file([("x", "F32", [1], f32(1))], pad=False),
        # edge cases that must be rejected
        "truncated": st_file([("x", "F32", [4], f32(1, 2, 3, 4))])[:-3],
        "huge_header_len": struct.pack("<Q", 2 ** 63) + b"{}",
        "overlap": struct.pack("<Q", 0) + b"",
        "bad_dtype": st_file([("x", "F99", [1], f32(1))]),
        "shape_overflow": st_file([("x", "F32", [4294967296, 4294967296, 4], b"")]),
        "nan": st_file([("x", "F32", [1], f32(float("nan")))]),
        "deep": st_file([], raw_header=b'{"a":' + b"[" * 50 + b"]" * 50 + b"}"),
    }
    # overlapping and gapped offsets, written by hand
    h = b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}'
    seeds["overlap"] = struct.pack("<Q", len(h)) + h + f32(1, 2, 3)
    h = b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}'
    seeds["gap"] = struct.pack("<Q", len(h)) + h + f32(1, 2)
    for name, blob in seeds.items():
        with open(os.path.join(out, name + ".safetensors"), "wb") as f:
            f.write(blob)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus"))
