#!/usr/bin/python3
"""Training speed of configs/cifar10_fast.yaml: maas-train in several variants against the same step
in PyTorch eager in Python (fast_reference.py: same network, channels-last, batch, augmentation,
optimizer, lookahead and thread count), alternating runs (each round runs every variant once, in
order). Variants are NAME=KIND:PRECISION:ATEN, KIND maas or python, PRECISION float32 or bfloat16,
ATEN the ATEN_CPU_CAPABILITY (avx2, avx512, or default: unset, i.e. the program's own choice).
Also the achieved GFLOP/s (3 x 2 x MACs per image x images/s). Prints a Markdown table with
medians and ratios to the first variant; the CPU line heads it.

  /usr/bin/python3 tests/bench/fast_speed.py [--repeats 3] [--train-limit 10240] [--variants ...]
"""
import argparse, csv, json, os, re, statistics, subprocess, sys, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DEFAULT_VARIANTS = ("maas-fp32-avx2=maas:float32:avx2,maas-fp32-avx512=maas:float32:avx512,"
                    "maas-bf16-avx2=maas:bfloat16:avx2,maas-bf16-avx512=maas:bfloat16:avx512,"
                    "pytorch-fp32-avx2=python:float32:avx2,pytorch-bf16-avx512=python:bfloat16:avx512")


def environment(aten):
    env = dict(os.environ)
    env.pop("ATEN_CPU_CAPABILITY", None)
    if aten != "default":
        env["ATEN_CPU_CAPABILITY"] = aten
    return env


def run_maas(binary, root, limit, threads, precision, aten, config):
    with tempfile.TemporaryDirectory() as out:
        cmd = [binary, "--config", os.path.join(ROOT, config), "--out", out + "/run",
               "--set", f"data.root={root}", "--set", "train.epochs=1", "--set", f"train.threads={threads}",
               "--set", f"data.train_limit={limit}", "--set", "data.test_limit=100", "--set", "eval.tta=none",
               "--set", f"train.precision={precision}"]
        log = subprocess.run(cmd, check=True, capture_output=True, text=True, env=environment(aten)).stderr
        macs = int(re.search(r"^multiply-accumulates per \S+ image\s+(\d+)$", log, re.M).group(1))
        row = list(csv.DictReader(open(out + "/run/metrics.csv")))[-1]
        return float(row["images_per_s"]), macs


def run_python(root, threads, steps, precision, aten, widths):
    cmd = ["/usr/bin/python3", os.path.join(HERE, "fast_reference.py"), "--root", root, "--threads", str(threads),
           "--steps", str(steps), "--widths", *map(str, widths)] + (["--bf16"] if precision == "bfloat16" else [])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=environment(aten)).stdout
    return json.loads(out)["images_per_s"]


def cpu_line():
    model, flags = "unknown", set()
    for line in open("/proc/cpuinfo"):
        key, _, value = line.partition(":")
        if key.strip() == "model name" and model == "unknown":
            model = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = set(value.split())
    shown = [f for f in ("avx2", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_bf16", "avx512_vnni",
                         "avx512_fp16", "amx_bf16", "amx_int8") if f in flags]
    return f"CPU: {model} ({' '.join(shown)}), {os.cpu_count()} cores"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", default=os.path.join(ROOT, "build/bin/maas-train"))
    p.add_argument("--root", default=os.path.join(ROOT, "data/cifar-10-batches-bin"))
    p.add_argument("--config", default="configs/cifar10_fast.yaml")
    p.add_argument("--widths", type=int, nargs=3, default=[64, 128, 128], help="the config's (for Python)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--train-limit", type=int, default=10240, help="images per maas-train run (10 steps of 1024)")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--variants", default=DEFAULT_VARIANTS)
    a = p.parse_args()
    variants = []
    for item in a.variants.split(","):
        name, _, spec = item.partition("=")
        kind, precision, aten = spec.split(":")
        variants.append((name, kind, precision, aten))
    speeds = {v[0]: [] for v in variants}
    macs = 0
    for round_ in range(a.repeats):
        for name, kind, precision, aten in variants:
            if kind == "maas":
                speed, macs = run_maas(a.binary, a.root, a.train_limit, a.threads, precision, aten, a.config)
            else:
                speed = run_python(a.root, a.threads, a.train_limit // 1024, precision, aten, a.widths)
            speeds[name].append(speed)
            print(f"round {round_ + 1} {name}: {speed:.0f} img/s", file=sys.stderr)
    medians = {n: statistics.median(s) for n, s in speeds.items()}
    first = variants[0][0]
    print(cpu_line())
    print()
    print(f"| variant | precision | ATEN_CPU_CAPABILITY | img/s (median) | vs {first} | GFLOP/s | runs |")
    print("|---|---|---|---:|---:|---:|---|")
    for name, kind, precision, aten in variants:
        m = medians[name]
        gflops = f"{6 * macs * m / 1e9:.0f}" if macs else ""
        print(f"| {name} | {precision} | {aten} | {m:.0f} | {m / medians[first]:.2f}x | {gflops} | "
              f"{', '.join(f'{s:.0f}' for s in speeds[name])} |")


if __name__ == "__main__":
    main()
