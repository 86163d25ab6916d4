#!/usr/bin/python3
"""Training speed and accuracy: maas-train against PyTorch eager in Python (train_reference.py),
same data, model, optimizer, batch size and thread count, run alternately in one session.
Prints a Markdown table with images/s (median of --repeats) and the ratio.

  /usr/bin/python3 tests/bench/train_speed.py [--batch-sizes 32 64] [--epochs 1] [--repeats 3]
"""
import argparse, csv, json, os, statistics, subprocess, sys, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def run_maas(binary, root, batch, epochs, threads, limit):
    with tempfile.TemporaryDirectory() as out:
        cmd = [binary, "--config", os.path.join(ROOT, "configs/cifar10_cnn.yaml"), "--out", out + "/run",
               "--set", f"data.root={root}", "--set", f"train.batch_size={batch}",
               "--set", f"train.epochs={epochs}", "--set", f"train.threads={threads}",
               "--set", f"data.train_limit={limit}"]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        rows = list(csv.DictReader(open(out + "/run/metrics.csv")))
        seconds = sum(float(r["seconds"]) for r in rows)
        images = sum(float(r["images_per_s"]) for r in rows) / len(rows)
        return images, float(rows[-1]["test_acc"])


def run_python(root, batch, epochs, threads, limit):
    cmd = ["/usr/bin/python3", os.path.join(HERE, "train_reference.py"), "--root", root, "--batch-size", str(batch),
           "--epochs", str(epochs), "--threads", str(threads), "--train-limit", str(limit)]
    result = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    return result["images_per_s"], result["test_acc"]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", default=os.path.join(ROOT, "build/bin/maas-train"))
    p.add_argument("--root", default=os.path.join(ROOT, "data/cifar-10-batches-bin"))
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 64])
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--train-limit", type=int, default=0, help="0 = all 50000 images")
    args = p.parse_args()

    print(f"# {args.epochs} epoch(s) of the seed CNN on CIFAR-10, {args.threads} threads, "
          f"median of {args.repeats} alternating runs", file=sys.stderr)
    print("| batch | maas-train img/s | PyTorch (Python) img/s | ratio | maas test acc | PyTorch test acc |")
    print("|---:|---:|---:|---:|---:|---:|")
    for batch in args.batch_sizes:
        maas, torch_py = [], []
        for i in range(args.repeats):
            maas.append(run_maas(args.binary, args.root, batch, args.epochs, args.threads, args.train_limit))
            torch_py.append(run_python(args.root, batch, args.epochs, args.threads, args.train_limit))
            print(f"  batch {batch} run {i + 1}: maas {maas[-1][0]:.0f} img/s, python {torch_py[-1][0]:.0f} img/s",
                  file=sys.stderr, flush=True)
        m = statistics.median(r[0] for r in maas)
        t = statistics.median(r[0] for r in torch_py)
        print(f"| {batch} | {m:.0f} | {t:.0f} | {m / t:.2f}x | {100 * statistics.median(r[1] for r in maas):.1f}% "
              f"| {100 * statistics.median(r[1] for r in torch_py):.1f}% |", flush=True)


if __name__ == "__main__":
    main()
