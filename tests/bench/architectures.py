#!/usr/bin/python3
"""Every shipped config's network: parameters, MACs per image (as maas-train prints them) and
training images/s (median of --repeats one-epoch runs on --train-limit images, configs alternating).
Prints a Markdown table.

  /usr/bin/python3 tests/bench/architectures.py [--train-limit 5120] [--repeats 3] [--threads 0]
"""
import argparse, csv, os, re, statistics, subprocess, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CONFIGS = ["cifar10_cnn.yaml", "cifar10_airbench.yaml", "cifar10_resnet9.yaml"]


def run(binary, config, root, limit, threads):
    """One epoch; returns (parameters, macs, widths, batch size, images/s)."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [binary, "--config", os.path.join(ROOT, "configs", config), "--out", out + "/run",
               "--set", f"data.root={root}", "--set", "train.epochs=1", "--set", f"train.threads={threads}",
               "--set", f"data.train_limit={limit}", "--set", "data.test_limit=500"]
        log = subprocess.run(cmd, check=True, capture_output=True, text=True).stderr
        parameters = int(re.search(r"^total\s+(\d+)$", log, re.M).group(1))
        macs = int(re.search(r"^multiply-accumulates per \S+ image\s+(\d+)$", log, re.M).group(1))
        resolved = open(out + "/run/config.yaml").read()
        batch = int(re.search(r"batch_size: (\d+)", resolved).group(1))
        row = list(csv.DictReader(open(out + "/run/metrics.csv")))[-1]
        return parameters, macs, batch, float(row["images_per_s"])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", default=os.path.join(ROOT, "build/bin/maas-train"))
    p.add_argument("--root", default=os.path.join(ROOT, "data/cifar-10-batches-bin"))
    p.add_argument("--train-limit", type=int, default=5120)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args()
    results = {c: [] for c in CONFIGS}
    for _ in range(a.repeats):
        for c in CONFIGS:  # alternating, so machine noise spreads over all configs alike
            results[c].append(run(a.binary, c, a.root, a.train_limit, a.threads))
    print("| config | model | parameters | MACs per image | batch | training img/s (median) | runs |")
    print("|---|---|---:|---:|---:|---:|---|")
    for c in CONFIGS:
        parameters, macs, batch, _ = results[c][0]
        speeds = [r[3] for r in results[c]]
        name = re.search(r"name: (\w+)", open(os.path.join(ROOT, "configs", c)).read()).group(1)
        print(f"| `configs/{c}` | {name} | {parameters:,} | {macs / 1e6:.1f} M | {batch} | "
              f"{statistics.median(speeds):.0f} | {', '.join(f'{s:.0f}' for s in speeds)} |")


if __name__ == "__main__":
    main()
