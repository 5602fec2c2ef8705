#!/usr/bin/env python3
"""test/torch_io.py: PyTorch models to and from anomaly's safetensors files.

Standard library and torch only.  The files are what anomaly_import() reads and
anomaly_export() writes (see src/io.c for the convention):

  scaler.mean, scaler.scale           the standardization (x - mean) / scale
  encoder.<i>.weight / .bias          nn.Sequential of nn.Linear and activations
  decoder.<i>.weight / .bias
  mu.weight, mu.bias,                 the VAE's heads (nn.Linear)
  logvar.weight, logvar.bias
  features.<i>.weight / .bias         the GAN discriminator's feature layers
  code.mean, code.whiten              the GAN's code term (optional)
  __metadata__: anomaly.kind, anomaly.layout ("torch"),
      anomaly.activations.<network> (one name per Linear: identity, relu,
      leaky_relu (slope 0.2), tanh, sigmoid), anomaly.beta (vae),
      anomaly.lambda and anomaly.code_lambda (gan), anomaly.feature_names (JSON), and in exported
      files anomaly.threshold, anomaly.score_quantiles, anomaly.options.

As a library:

    import torch_io
    ae = torch_io.Autoencoder(torch_io.sequential([8, 16, 4], ["relu", "identity"]),
                              torch_io.sequential([4, 16, 8], ["relu", "identity"]),
                              mean, scale)
    ... train ae on ae.standardize(x) ...
    torch_io.write_model(ae, "ae.safetensors", feature_names=[...])
    -- SQL: SELECT anomaly_import('ae', 'autoencoder', pg_read_binary_file('/path/ae.safetensors'));

    model = torch_io.read_model("exported.safetensors")   # from anomaly_export()
    model.score(x)      # the scores anomaly_score() gives, per row
    model.threshold, model.feature_names, model.quantiles, model.options

As a program (test/t/060_torch_interop.pl uses it):

    torch_io.py train KIND CSV OUT SCORES [--epochs N] [--seed S]
                [--dtype F32|F16|BF16|F64] [--rename]
        trains a small PyTorch model of KIND (autoencoder, vae, gan) on the
        feature columns of CSV (all but the last, the label), writes it to
        OUT and the PyTorch scores of every row to SCORES;
    torch_io.py score MODEL CSV SCORES
        reads an exported model and writes the PyTorch scores of every row.
    SCORES has one line per row: the score computed in float64 from the
    stored float32 weights, then the score of a float32 forward pass.
"""
import argparse
import csv
import json
import struct
import sys

import torch
from torch import nn

LEAKY_SLOPE = 0.2   # the extension's leaky_relu (PyTorch's default is 0.01)
LOGVAR_CLAMP = 10.0  # the VAE clamps log-variances to [-10, 10]

DTYPES = {
    torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.float64: "F64", torch.int64: "I64", torch.int32: "I32",
    torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL",
}
TORCH_DTYPES = {v: k for k, v in DTYPES.items()}
ACTIVATIONS = ["identity", "relu", "leaky_relu", "tanh", "sigmoid"]


# ---------------------------------------------------------------------------
# The file format
# ---------------------------------------------------------------------------

def save_file(tensors, metadata=None, path=None):
    """Write {name: tensor} (in order) and {key: str} metadata; returns the bytes."""
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs = []
    offset = 0
    for name, t in tensors.items():
        t = t.detach().contiguous().cpu()
        if t.dtype not in DTYPES:
            raise ValueError("tensor %s has unsupported dtype %s" % (name, t.dtype))
        blob = bytes(t.reshape(-1).view(torch.uint8).tolist()) if t.numel() else b""
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    data = struct.pack("<Q", len(h)) + h + b"".join(blobs)
    if path is not None:
        with open(path, "wb") as f:
            f.write(data)
    return data


def load_file(data):
    """Read a file (bytes or path); returns ({name: tensor}, {key: str})."""
    if isinstance(data, str):
        with open(data, "rb") as f:
            data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    buf = data[8 + n:]
    metadata = header.pop("__metadata__", {})
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        dtype = TORCH_DTYPES[info["dtype"]]
        if end > begin:
            t = torch.frombuffer(bytearray(buf[begin:end]), dtype=dtype)
        else:
            t = torch.zeros(0, dtype=dtype)
        tensors[name] = t.reshape(info["shape"])
    return tensors, metadata


# ---------------------------------------------------------------------------
# Modules
# ---------------------------------------------------------------------------

def activation_module(name):
    """The nn.Module of an activation name, or None for identity."""
    return {"identity": None, "relu": nn.ReLU(), "leaky_relu": nn.LeakyReLU(LEAKY_SLOPE),
            "tanh": nn.Tanh(), "sigmoid": nn.Sigmoid()}[name]


def sequential(widths, acts):
    """nn.Sequential of Linear(widths[i], widths[i+1]) each followed by acts[i]."""
    mods = []
    for i, a in enumerate(acts):
        mods.append(nn.Linear(widths[i], widths[i + 1]))
        m = activation_module(a)
        if m is not None:
            mods.append(m)
    return nn.Sequential(*mods)


def activations_of(seq):
    """One activation name per nn.Linear of an nn.Sequential."""
    names = []
    for m in seq:
        if isinstance(m, nn.Linear):
            names.append("identity")
        elif not names:
            raise ValueError("%s comes before the first nn.Linear" % type(m).__name__)
        elif names[-1] != "identity":
            raise ValueError("two activations follow one nn.Linear")
        elif isinstance(m, nn.ReLU):
            names[-1] = "relu"
        elif isinstance(m, nn.Tanh):
            names[-1] = "tanh"
        elif isinstance(m, nn.Sigmoid):
            names[-1] = "sigmoid"
        elif isinstance(m, nn.LeakyReLU):
            if m.negative_slope != LEAKY_SLOPE:
                raise ValueError("the extension's LeakyReLU has slope %g" % LEAKY_SLOPE)
            names[-1] = "leaky_relu"
        elif isinstance(m, nn.Identity):
            pass
        else:
            raise ValueError("%s is not supported" % type(m).__name__)
    return names


def sequential_from(tensors, prefix, acts):
    """Rebuild the nn.Sequential that a file stores under prefix."""
    mods = []
    k = 0
    state = {}
    for a in acts:
        w = tensors["%s.%d.weight" % (prefix, k)]
        lin = nn.Linear(w.shape[1], w.shape[0])
        state["%d.weight" % k] = w.float()
        state["%d.bias" % k] = tensors["%s.%d.bias" % (prefix, k)].float()
        mods.append(lin)
        m = activation_module(a)
        if m is not None:
            mods.append(m)
        k += 1 if m is None else 2
    seq = nn.Sequential(*mods)
    seq.load_state_dict(state)
    return seq


class Scaled(nn.Module):
    """A detector whose rows are standardized first, as the extension does."""

    def __init__(self, mean, scale):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32))

    def standardize(self, x):
        return (x.to(self.mean.dtype) - self.mean) / self.scale


class Autoencoder(Scaled):
    """score = sum over features of (z - decoder(encoder(z)))^2, z standardized."""
    kind = "autoencoder"
    networks = ("encoder", "decoder")

    def __init__(self, encoder, decoder, mean, scale):
        super().__init__(mean, scale)
        self.encoder = encoder
        self.decoder = decoder

    def forward(self, z):
        return self.decoder(self.encoder(z))

    def score(self, x):
        z = self.standardize(x)
        return ((z - self.forward(z)) ** 2).sum(-1)


class VAE(Scaled):
    """score = sum (z - decoder(mu))^2 + beta * KL(N(mu, exp(logvar)) || N(0, I))."""
    kind = "vae"
    networks = ("encoder", "mu", "logvar", "decoder")

    def __init__(self, encoder, mu, logvar, decoder, mean, scale, beta=1.0):
        super().__init__(mean, scale)
        self.encoder = encoder
        self.mu = mu
        self.logvar = logvar
        self.decoder = decoder
        self.beta = float(beta)

    def encode(self, z):
        h = self.encoder(z)
        return self.mu(h), self.logvar(h).clamp(-LOGVAR_CLAMP, LOGVAR_CLAMP)

    def kl(self, m, lv):
        return 0.5 * (m ** 2 + lv.exp() - 1.0 - lv).sum(-1)

    def score(self, x):
        z = self.standardize(x)
        m, lv = self.encode(z)
        return ((z - self.decoder(m)) ** 2).sum(-1) + self.beta * self.kl(m, lv)


class GAN(Scaled):
    """score = sum (z - G(z))^2 + lambda * sum (f(z) - f(G(z)))^2
             [+ code_lambda * sum (W (c - m))^2],  c = encoder(z), G = decoder(encoder).

    The code term (code_mean m, code_whiten W, code_lambda) is optional."""
    kind = "gan"
    networks = ("encoder", "decoder", "features")

    def __init__(self, encoder, decoder, features, mean, scale, lam,
                 code_mean=None, code_whiten=None, code_lam=None):
        super().__init__(mean, scale)
        self.encoder = encoder
        self.decoder = decoder
        self.features = features
        self.lam = float(lam)
        self.code_mean = code_mean
        self.code_whiten = code_whiten
        self.code_lam = None if code_lam is None else float(code_lam)

    def score(self, x):
        z = self.standardize(x)
        c = self.encoder(z)
        r = self.decoder(c)
        s = ((z - r) ** 2).sum(-1) + self.lam * ((self.features(z) - self.features(r)) ** 2).sum(-1)
        if self.code_lam is not None:
            y = (c - self.code_mean.to(c.dtype)) @ self.code_whiten.to(c.dtype).T
            s = s + self.code_lam * (y ** 2).sum(-1)
        return s


# ---------------------------------------------------------------------------
# Writing and reading models
# ---------------------------------------------------------------------------

def write_model(model, path=None, dtype=torch.float32, feature_names=None, names=None):
    """Write an Autoencoder, VAE or GAN; returns the bytes.

    names renames the networks in the file ({"encoder": "model.enc"}), for
    files that anomaly_import() reads with the option names."""
    names = names or {}
    tensors = {"scaler.mean": model.mean.to(dtype), "scaler.scale": model.scale.to(dtype)}
    meta = {"anomaly.kind": model.kind, "anomaly.layout": "torch"}
    for net in model.networks:
        module = getattr(model, net)
        if isinstance(module, nn.Sequential):
            meta["anomaly.activations." + net] = ",".join(activations_of(module))
        for k, v in module.state_dict().items():
            tensors["%s.%s" % (names.get(net, net), k)] = v.to(dtype)
    if isinstance(model, VAE):
        meta["anomaly.beta"] = repr(model.beta)
    if isinstance(model, GAN):
        meta["anomaly.lambda"] = repr(model.lam)
        if model.code_lam is not None:
            tensors["code.mean"] = model.code_mean.to(dtype)
            tensors["code.whiten"] = model.code_whiten.to(dtype)
            meta["anomaly.code_lambda"] = repr(model.code_lam)
    if feature_names is not None:
        meta["anomaly.feature_names"] = json.dumps(list(feature_names))
    return save_file(tensors, meta, path)


def read_model(data):
    """Rebuild the PyTorch model of a file written by anomaly_export()."""
    tensors, meta = load_file(data)
    kind = meta.get("anomaly.kind")
    if meta.get("anomaly.layout", "torch") != "torch":
        raise ValueError("a %s model has no PyTorch form; its tensors are %s" % (kind, sorted(tensors)))

    def acts(net):
        s = meta.get("anomaly.activations." + net, "")
        return s.split(",") if s else []

    mean, scale = tensors["scaler.mean"].float(), tensors["scaler.scale"].float()
    if kind == "autoencoder":
        model = Autoencoder(sequential_from(tensors, "encoder", acts("encoder")),
                            sequential_from(tensors, "decoder", acts("decoder")), mean, scale)
    elif kind == "vae":
        heads = []
        for h in ("mu", "logvar"):
            w = tensors[h + ".weight"]
            lin = nn.Linear(w.shape[1], w.shape[0])
            lin.load_state_dict({"weight": w.float(), "bias": tensors[h + ".bias"].float()})
            heads.append(lin)
        model = VAE(sequential_from(tensors, "encoder", acts("encoder")), heads[0], heads[1],
                    sequential_from(tensors, "decoder", acts("decoder")), mean, scale,
                    float(meta["anomaly.beta"]))
    elif kind == "gan":
        model = GAN(sequential_from(tensors, "encoder", acts("encoder")),
                    sequential_from(tensors, "decoder", acts("decoder")),
                    sequential_from(tensors, "features", acts("features")), mean, scale,
                    float(meta["anomaly.lambda"]),
                    tensors["code.mean"].float() if "code.mean" in tensors else None,
                    tensors["code.whiten"].float() if "code.whiten" in tensors else None,
                    float(meta["anomaly.code_lambda"]) if "anomaly.code_lambda" in meta else None)
    else:
        raise ValueError("unknown kind %r" % kind)
    model.eval()
    model.feature_names = json.loads(meta["anomaly.feature_names"]) if "anomaly.feature_names" in meta else None
    model.threshold = float(meta["anomaly.threshold"]) if "anomaly.threshold" in meta else None
    model.quantiles = ([float(v) for v in meta["anomaly.score_quantiles"].split(",")]
                       if "anomaly.score_quantiles" in meta else None)
    model.options = json.loads(meta["anomaly.options"]) if "anomaly.options" in meta else None
    return model


# ---------------------------------------------------------------------------
# The program
# ---------------------------------------------------------------------------

def read_csv(path):
    """Feature columns (all but the last) of a CSV with a header, as float32."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header = rows[0][:-1]
    x = torch.tensor([[float(v) for v in r[:-1]] for r in rows[1:]], dtype=torch.float32)
    return header, x


def scores_of(model, x):
    """Scores in float64 (weights as stored) and of a float32 forward pass."""
    with torch.no_grad():
        s32 = model.float().score(x.float())
        s64 = model.double().score(x.double())
        model.float()
    return s64, s32


def write_scores(path, s64, s32):
    with open(path, "w") as f:
        for a, b in zip(s64.tolist(), s32.tolist()):
            f.write("%r %r\n" % (a, b))


def train(args):
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    header, x = read_csv(args.csv)
    d = x.shape[1]
    mean = x.double().mean(0).float()
    scale = x.double().std(0, unbiased=False).float()
    scale[scale == 0] = 1.0
    if args.kind == "autoencoder":
        # relu hidden layers, a linear bottleneck and output: per-layer activations
        model = Autoencoder(sequential([d, 16, 4], ["relu", "identity"]),
                            sequential([4, 16, d], ["relu", "identity"]), mean, scale)
    elif args.kind == "vae":
        model = VAE(sequential([d, 16], ["tanh"]), nn.Linear(16, 4), nn.Linear(16, 4),
                    sequential([4, 16, d], ["tanh", "identity"]), mean, scale, beta=0.5)
    elif args.kind == "gan":
        model = GAN(sequential([d, 12, 4], ["tanh", "identity"]), sequential([4, 12, d], ["tanh", "identity"]),
                    sequential([d, 12], ["leaky_relu"]), mean, scale, lam=0.25)
    else:
        raise SystemExit("unknown kind %s" % args.kind)
    z = model.standardize(x)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(args.seed)
    for _ in range(args.epochs):
        perm = torch.randperm(z.shape[0], generator=gen)
        for i in range(0, z.shape[0], 64):
            b = z[perm[i:i + 64]]
            if isinstance(model, VAE):
                m, lv = model.encode(b)
                zz = m + (0.5 * lv).exp() * torch.randn(m.shape, generator=gen)
                loss = (((b - model.decoder(zz)) ** 2).sum(-1) + model.beta * model.kl(m, lv)).mean()
            elif isinstance(model, GAN):
                loss = ((b - model.decoder(model.encoder(b))) ** 2).sum(-1).mean()
            else:
                loss = ((b - model(b)) ** 2).sum(-1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    dtype = TORCH_DTYPES[args.dtype]
    with torch.no_grad():
        # the reference uses exactly the values the file stores
        for p in list(model.parameters()) + list(model.buffers()):
            p.copy_(p.to(dtype).float())
        if isinstance(model, GAN):
            # the code term: Mahalanobis distance of the code, whitened by the
            # inverse Cholesky factor of the codes' covariance
            c = model.encoder(z).double()
            m = c.mean(0)
            cov = torch.cov(c.T, correction=0) + 1e-3 * torch.eye(c.shape[1], dtype=torch.float64)
            w = torch.linalg.inv(torch.linalg.cholesky(cov))
            model.code_mean = m.to(dtype).float()
            model.code_whiten = w.to(dtype).float()
            model.code_lam = 0.5
    names = {"encoder": "model.enc", "decoder": "model.dec"} if args.rename else None
    write_model(model, args.out, dtype=dtype, feature_names=header, names=names)
    write_scores(args.scores, *scores_of(model, x))


def score(args):
    torch.set_num_threads(1)
    model = read_model(args.model)
    header, x = read_csv(args.csv)
    write_scores(args.scores, *scores_of(model, x))
    # what else the file told PyTorch, for the caller to check
    json.dump({"kind": model.kind, "threshold": repr(model.threshold), "feature_names": model.feature_names,
               "quantiles": len(model.quantiles or []), "options": model.options}, sys.stdout)
    print()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("kind")
    t.add_argument("csv")
    t.add_argument("out")
    t.add_argument("scores")
    t.add_argument("--epochs", type=int, default=20)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--dtype", default="F32", choices=["F32", "F16", "BF16", "F64"])
    t.add_argument("--rename", action="store_true",
                   help="store encoder/decoder as model.enc/model.dec (import with the option names)")
    s = sub.add_parser("score")
    s.add_argument("model")
    s.add_argument("csv")
    s.add_argument("scores")
    args = p.parse_args()
    train(args) if args.cmd == "train" else score(args)


if __name__ == "__main__":
    main()
