#!/usr/bin/python3
"""TorchScript (LibTorch, as Debian's PyTorch 1.13 runs maas's artifact) vs ONNX (ONNX Runtime from
npm onnxruntime-node) inference speed for the same exported run, batch 1 and batch 32, in
alternating rounds (the machine may be shared: compare the ratio, not the absolute numbers).

For each RUN: maas-export --optimize --tta none (frozen TorchScript, BatchNorm folded) and
maas-export --format onnx --tta none, both into OUT/, then ROUNDS rounds of: TorchScript
SECONDS, ONNX Runtime SECONDS, per batch size, each side with THREADS intra-op threads.
Prints a Markdown table (medians over the rounds; ratio = ONNX Runtime / TorchScript images/s).

  /usr/bin/python3 tests/bench/onnx_speed.py RUN [RUN ...] [--out runs/onnx_bench] [--seconds 3]
      [--rounds 3] [--threads 2] [--batches 1,32]
Needs build/bin/maas-export and `npm ci --ignore-scripts --prefix export/onnxrt`.
"""
import argparse, json, os, statistics, subprocess, sys, time
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def export(run, out_dir):
    name = os.path.basename(os.path.normpath(run))
    pt, onnx = os.path.join(out_dir, name + ".pt"), os.path.join(out_dir, name + ".onnx")
    exporter = os.path.join(ROOT, "build/bin/maas-export")
    if not os.path.exists(pt):
        subprocess.run([exporter, "--run", run, "--out", pt, "--optimize", "--tta", "none"], check=True)
    if not os.path.exists(onnx):
        subprocess.run([exporter, "--run", run, "--out", onnx, "--format", "onnx", "--tta", "none"], check=True)
    return name, pt, onnx


def torchscript_speed(module, shape, batch, seconds):
    x = torch.randint(0, 256, (batch,) + shape, dtype=torch.uint8)
    with torch.no_grad():
        for _ in range(5):
            module(x)
        runs, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            module(x)
            runs += 1
        return runs * batch / (time.perf_counter() - start)


def onnxruntime_speed(onnx, shape, batch, seconds, threads):
    out = subprocess.run(["node", os.path.join(ROOT, "export/onnxrt/bench.mjs"), onnx, *map(str, shape), str(batch),
                          str(seconds), str(threads)], check=True, capture_output=True, text=True).stdout
    report = json.loads(out)
    return report["images_per_second"], report["onnxruntime"]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+")
    p.add_argument("--out", default=os.path.join(ROOT, "runs/onnx_bench"))
    p.add_argument("--seconds", type=float, default=3)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batches", default="1,32")
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    torch.set_num_threads(a.threads)
    batches = [int(b) for b in a.batches.split(",")]
    rows, version = [], "?"
    for run in a.runs:
        name, pt, onnx = export(run, a.out)
        module = torch.jit.load(pt).eval()
        shape = (3, 32, 32)  # CIFAR-10 runs
        for batch in batches:
            ts, ort = [], []
            for _ in range(a.rounds):
                ts.append(torchscript_speed(module, shape, batch, a.seconds))
                speed, version = onnxruntime_speed(onnx, shape, batch, a.seconds, a.threads)
                ort.append(speed)
            ratios = [o / t for o, t in zip(ort, ts)]
            rows.append((name, batch, statistics.median(ts), statistics.median(ort), statistics.median(ratios),
                         min(ratios), max(ratios)))
            print(f"{name} batch {batch}: TorchScript {ts}, ONNX Runtime {ort}", file=sys.stderr)
    print(f"| run | batch | TorchScript (LibTorch {torch.__version__}) images/s | ONNX Runtime {version} images/s "
          f"| ratio ORT/TS (median, min-max of {a.rounds} rounds) |")
    print("|---|---:|---:|---:|---:|")
    for name, batch, ts, ort, ratio, low, high in rows:
        print(f"| {name} | {batch} | {ts:.0f} | {ort:.0f} | {ratio:.2f} ({low:.2f}-{high:.2f}) |")


if __name__ == "__main__":
    main()
