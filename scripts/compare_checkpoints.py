#!/usr/bin/env python3
"""Compares two flash checkpoints (and optionally their --log files) within a tolerance.

Standard library only (CI runs it without numpy/PyTorch): safetensors is an 8-byte header
length, a JSON header, then raw little-endian data.

usage: compare_checkpoints.py A B --tolerance T [--log-a LOG --log-b LOG --loss-tolerance R]
Exit status 0 when every parameter (and moment) differs by at most T and every logged loss
by at most R relative; prints the largest differences either way.
"""
import argparse, array, json, struct, sys


def read_safetensors(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", (name, info["dtype"])
        start, end = info["data_offsets"]
        values = array.array("f")
        values.frombytes(data[start:end])
        if sys.byteorder != "little":
            values.byteswap()
        tensors[name] = values
    return tensors


def largest_difference(a, b):
    assert a.keys() == b.keys(), sorted(set(a) ^ set(b))
    worst, where = -1.0, None
    for name in a:
        assert len(a[name]) == len(b[name]), name
        d = max((abs(x - y) for x, y in zip(a[name], b[name])), default=0.0)
        if d > worst:
            worst, where = d, name
    return worst, where


def losses(path):
    with open(path) as f:
        return [json.loads(line)["train_loss"] for line in f if line.strip()]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--tolerance", type=float, required=True)
    p.add_argument("--log-a")
    p.add_argument("--log-b")
    p.add_argument("--loss-tolerance", type=float, default=1e-5)
    args = p.parse_args()
    ok = True
    for file in ["model.safetensors", "optimizer.safetensors"]:
        worst, where = largest_difference(read_safetensors(f"{args.a}/{file}"), read_safetensors(f"{args.b}/{file}"))
        print(f"{file}: largest |difference| {worst:.3g} (in {where}), tolerance {args.tolerance:.3g}")
        ok &= worst <= args.tolerance
    if args.log_a and args.log_b:
        la, lb = losses(args.log_a), losses(args.log_b)
        ok &= len(la) == len(lb) and len(la) > 0
        worst = max((abs(x - y) / max(1, abs(y)) for x, y in zip(la, lb)), default=float("inf"))
        print(f"losses: {len(la)} vs {len(lb)} steps, largest relative difference {worst:.3g}, tolerance {args.loss_tolerance:.3g}")
        ok &= worst <= args.loss_tolerance
    print("OK" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
