#!/usr/bin/env python3
"""test/fuzz/import_mutations.py: structured mutations of safetensors files
fed to anomaly_import() in a running server (standard library + psycopg2).

The libFuzzer harness (run.sh) covers the parser alone.  This script covers
what lies behind it in the server: the naming convention, the architecture
checks, the metadata, and the kinds' load() on tensors that parse.  It
exports a model of every kind, then, for a bounded number of rounds, mutates
a file *consistently* (the header is rewritten so that offsets stay valid and
the file parses) or raw (bytes flipped), imports it, and requires that every
call ends with a result or an SQL error, never with a lost connection; a
successful import must score a row.

    python3 test/fuzz/import_mutations.py "host=/tmp/sock port=5432 dbname=postgres" [ROUNDS] [SEED]

Exit status 1 and the offending file in the working directory if the server
went away.  Needs the extension installed in the database.
"""
import json
import random
import struct
import sys

import psycopg2

KINDS_DEEP = ("autoencoder", "vae", "gan")
DTYPES = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8, "I32": 4, "I64": 8, "U8": 1, "BOOL": 1}


def parse(blob):
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = blob[8 + n:]
    tensors = []
    for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        b, e = info["data_offsets"]
        tensors.append([name, info["dtype"], list(info["shape"]), data[b:e]])
    return tensors, meta


def build(tensors, meta):
    header = {"__metadata__": meta} if meta else {}
    data = b""
    for name, dtype, shape, blob in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(blob)]}
        data += blob
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + data


def numel(shape):
    n = 1
    for s in shape:
        n *= s
    return n


def random_blob(rng, dtype, n):
    size = DTYPES.get(dtype, 4)
    if n * size > 1 << 20:
        return None
    special = [b"\x00\x00\xc0\x7f", b"\x00\x00\x80\x7f", b"\x00\x00\x00\x00"]
    if dtype == "F32" and rng.random() < 0.9:
        return b"".join(struct.pack("<f", rng.uniform(-2, 2)) if rng.random() > 0.01 else rng.choice(special)
                        for _ in range(n))
    return bytes(rng.getrandbits(8) for _ in range(n * size))


def mutate(rng, tensors, meta):
    tensors = [list(t) for t in tensors]
    meta = dict(meta)
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(10)
        t = rng.choice(tensors) if tensors else None
        if op == 0 and t:      # change one dimension, refill the data
            if t[2]:
                i = rng.randrange(len(t[2]))
                t[2][i] = max(0, t[2][i] + rng.choice([-1, 1, 2, -t[2][i], 4096]))
            else:
                t[2] = [rng.randint(0, 3)]
            blob = random_blob(rng, t[1], numel(t[2]))
            if blob is not None:
                t[3] = blob
        elif op == 1 and t:    # another dtype, data refilled
            t[1] = rng.choice(list(DTYPES))
            blob = random_blob(rng, t[1], numel(t[2]))
            if blob is not None:
                t[3] = blob
        elif op == 2 and t:    # rename a tensor
            parts = t[0].split(".")
            parts[rng.randrange(len(parts))] = rng.choice(["0", "1", "2", "7", "weight", "bias", "mu", "logvar",
                                                            "encoder", "decoder", "features", "w0", "act", "x"])
            t[0] = ".".join(parts)
        elif op == 3 and t:    # drop a tensor
            tensors.remove(t)
        elif op == 4 and t:    # duplicate a tensor under another name
            tensors.append([t[0] + ".copy", t[1], list(t[2]), t[3]])
        elif op == 5:          # metadata value garbage
            keys = list(meta) or ["anomaly.kind"]
            k = rng.choice(keys)
            meta[k] = rng.choice(["", "tanh", "relu,relu,relu", ",,,", "[1,2", "{}", "[]", "NaN", "-1", "1e400",
                                  "Infinity", "vae", "gan", "native", "torch", "x" * 300, "0.5,0.4",
                                  json.dumps(["a"] * rng.randint(0, 20))])
        elif op == 6:          # drop a metadata key
            if meta:
                del meta[rng.choice(list(meta))]
        elif op == 7 and t:    # non-finite or huge values in place
            b = bytearray(t[3])
            if len(b) >= 4:
                i = rng.randrange(len(b) // 4) * 4
                b[i:i + 4] = rng.choice([b"\x00\x00\xc0\x7f", b"\x00\x00\x80\xff", b"\xff\xff\x7f\x7f"])
            t[3] = bytes(b)
        elif op == 8 and t:    # reshape keeping the element count
            n = numel(t[2])
            t[2] = rng.choice([[n], [1, n], [n, 1], [n, 1, 1], []]) if n != 1 or rng.random() < 0.5 else [1]
        elif op == 9 and t:    # activation codes out of range (native layout)
            if t[1] == "F32" and t[3]:
                t[3] = struct.pack("<f", rng.choice([5.0, -1.0, 1.5, 1e9])) + t[3][4:]
    return tensors, meta


def main():
    dsn = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    rng = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 1)
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("CREATE TEMP TABLE fz AS SELECT ARRAY[sin(i), cos(i), sin(i) * cos(i), (i % 5)::float8] AS f "
                "FROM generate_series(1, 200) i")
    cur.execute("SELECT kind FROM anomaly_kinds()")
    kinds = [r[0] for r in cur.fetchall()]
    files = {}
    for k in kinds:
        opts = '{"epochs": 2}' if k in KINDS_DEEP else "{}"
        cur.execute("SELECT anomaly_train(%s, 'SELECT f FROM fz', %s, %s)", ("fz_" + k, k, opts))
        cur.execute("SELECT anomaly_export(%s)", ("fz_" + k,))
        files[k] = bytes(cur.fetchone()[0])
    ok = errors = 0
    codes = {}
    for r in range(rounds):
        kind = rng.choice(kinds)
        tensors, meta = parse(files[kind])
        if rng.random() < 0.85:
            blob = build(*mutate(rng, tensors, meta))
        else:
            b = bytearray(files[kind])
            for _ in range(rng.randint(1, 8)):
                b[rng.randrange(len(b))] = rng.getrandbits(8)
            blob = bytes(b)
        target_kind = kind if rng.random() < 0.8 else rng.choice(kinds + [None])
        try:
            cur.execute("SELECT anomaly_import('fz_mut', %s, %s, %s)",
                        (target_kind, psycopg2.Binary(blob), rng.choice(['{}', '{"strict": false}'])))
            cur.execute("SELECT anomaly_score('fz_mut', f) FROM fz LIMIT 1")
            cur.fetchall()
            ok += 1
        except psycopg2.Error as e:
            if e.pgcode is not None and not conn.closed:
                errors += 1
                codes[e.pgcode] = codes.get(e.pgcode, 0) + 1
                continue
            with open("import_mutation_crash.safetensors", "wb") as f:
                f.write(blob)
            print("server connection lost at round %d (kind %s); file kept in import_mutation_crash.safetensors"
                  % (r, target_kind))
            return 1
    cur.execute("SELECT anomaly_drop(name) FROM anomaly_models WHERE name LIKE 'fz\\_%'")
    print("import mutations: %d rounds, %d imported and scored, %d errors %s, no crash"
          % (rounds, ok, errors, dict(sorted(codes.items()))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
