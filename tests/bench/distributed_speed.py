#!/usr/bin/python3
"""Data-parallel training speed: one maas-train process with 2 threads against 2 processes with
1 thread each, launched by torchrun (Debian's python3-torch), on the fast config's network and on
the seed CNN; alternating runs; also the all-reduce wait per step that rank 0 logs. Prints a
Markdown table.

  /usr/bin/python3 tests/bench/distributed_speed.py [--repeats 2] [--train-limit 10240]
"""
import argparse, csv, os, re, statistics, subprocess, sys, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CONFIGS = {"airbench [64,128,128] (cifar10_fast)": "configs/cifar10_fast.yaml", "seed CNN (cifar10_cnn)": "configs/cifar10_cnn.yaml"}


def run(config, processes, limit, root):
    with tempfile.TemporaryDirectory() as out:
        args = ["--config", os.path.join(ROOT, config), "--out", out + "/run", "--set", f"data.root={root}",
                "--set", "train.epochs=1", "--set", f"data.train_limit={limit}", "--set", "data.test_limit=100",
                "--set", "eval.tta=none", "--set", f"train.threads={2 // processes}"]
        binary = os.path.join(ROOT, "build/bin/maas-train")
        if processes == 1:
            cmd = [binary] + args
        else:
            cmd = ["/usr/bin/python3", "-m", "torch.distributed.run", "--redirects", "1", "--tee", "1", "--no_python", "--nproc_per_node", str(processes),
                   "--master_port", "29533", binary] + args
        log = subprocess.run(cmd, check=True, capture_output=True, text=True).stderr
        row = list(csv.DictReader(open(out + "/run/metrics.csv")))[-1]
        reduce = re.search(r"all-reduce ([0-9.]+) ms/step", log)
        return float(row["images_per_s"]), float(reduce.group(1)) if reduce else None


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default=os.path.join(ROOT, "data/cifar-10-batches-bin"))
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--train-limit", type=int, default=10240)
    a = p.parse_args()
    print("| network | 1 process x 2 threads, img/s | 2 processes x 1 thread, img/s | ratio | all-reduce wait, ms/step | runs |")
    print("|---|---:|---:|---:|---:|---|")
    for name, config in CONFIGS.items():
        one, two, waits = [], [], []
        for _ in range(a.repeats):
            one.append(run(config, 1, a.train_limit, a.root)[0])
            speed, wait = run(config, 2, a.train_limit, a.root)
            two.append(speed)
            waits.append(wait)
            print(f"{name}: 1x2 {one[-1]:.0f} img/s, 2x1 {two[-1]:.0f} img/s, all-reduce {wait} ms/step", file=sys.stderr)
        m1, m2 = statistics.median(one), statistics.median(two)
        runs = ", ".join(f"{x:.0f}/{y:.0f}" for x, y in zip(one, two))
        print(f"| {name} | {m1:.0f} | {m2:.0f} | {m2 / m1:.2f}x | {statistics.median(waits):.1f} | {runs} |")


if __name__ == "__main__":
    main()
