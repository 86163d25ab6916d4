#!/usr/bin/python3
"""Training speed of configs/cifar10_fast.yaml: maas-train against the same step in PyTorch eager in
Python (fast_reference.py: same network, channels-last, batch, augmentation, optimizer, lookahead and
thread count), alternating runs; also the achieved GFLOP/s (3 x 2 x MACs per image x images/s, the
frozen stem's weight gradient included) next to the machine's convolution peak, measured here with
one 3x3 convolution of the network's widest layer. Prints a Markdown table.

  /usr/bin/python3 tests/bench/fast_speed.py [--repeats 3] [--train-limit 10240]
"""
import argparse, csv, json, os, re, statistics, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def run_maas(binary, root, limit, threads):
    with tempfile.TemporaryDirectory() as out:
        cmd = [binary, "--config", os.path.join(ROOT, "configs/cifar10_fast.yaml"), "--out", out + "/run",
               "--set", f"data.root={root}", "--set", "train.epochs=1", "--set", f"train.threads={threads}",
               "--set", f"data.train_limit={limit}", "--set", "data.test_limit=100", "--set", "eval.tta=none"]
        log = subprocess.run(cmd, check=True, capture_output=True, text=True).stderr
        macs = int(re.search(r"^multiply-accumulates per \S+ image\s+(\d+)$", log, re.M).group(1))
        row = list(csv.DictReader(open(out + "/run/metrics.csv")))[-1]
        return float(row["images_per_s"]), macs


def run_python(root, threads, steps):
    cmd = ["/usr/bin/python3", os.path.join(HERE, "fast_reference.py"), "--root", root, "--threads", str(threads),
           "--steps", str(steps)]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)["images_per_s"]


def conv_peak(threads):
    """GFLOP/s of the forward of a 64->128 3x3 convolution at 15x15, batch 512, channels-last (oneDNN)."""
    code = ("import torch,time,torch.nn.functional as F\n"
            f"torch.set_num_threads({threads})\n"
            "x=torch.randn(512,64,15,15).contiguous(memory_format=torch.channels_last)\n"
            "w=torch.randn(128,64,3,3).contiguous(memory_format=torch.channels_last)\n"
            "with torch.no_grad():\n"
            "  [F.conv2d(x,w,padding=1) for _ in range(2)]\n"
            "  t=time.perf_counter()\n"
            "  [F.conv2d(x,w,padding=1) for _ in range(5)]\n"
            "  print(5*2*512*128*64*9*225/(time.perf_counter()-t)/1e9)\n")
    return float(subprocess.run(["/usr/bin/python3", "-c", code], check=True, capture_output=True, text=True).stdout)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", default=os.path.join(ROOT, "build/bin/maas-train"))
    p.add_argument("--root", default=os.path.join(ROOT, "data/cifar-10-batches-bin"))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--train-limit", type=int, default=10240, help="images per maas-train run (10 steps of 1024)")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    a = p.parse_args()
    maas, python, peaks = [], [], []
    macs = 0
    for _ in range(a.repeats):
        speed, macs = run_maas(a.binary, a.root, a.train_limit, a.threads)
        maas.append(speed)
        python.append(run_python(a.root, a.threads, a.train_limit // 1024))
        peaks.append(conv_peak(a.threads))
        print(f"maas {maas[-1]:.0f} img/s, python {python[-1]:.0f} img/s, conv peak {peaks[-1]:.0f} GFLOP/s",
              file=sys.stderr)
    m, py, peak = statistics.median(maas), statistics.median(python), statistics.median(peaks)
    gflops = lambda s: 6 * macs * s / 1e9
    print("| | img/s (median) | GFLOP/s of training work | runs |")
    print("|---|---:|---:|---|")
    print(f"| maas-train | {m:.0f} | {gflops(m):.0f} | {', '.join(f'{s:.0f}' for s in maas)} |")
    print(f"| PyTorch eager (Python) | {py:.0f} | {gflops(py):.0f} | {', '.join(f'{s:.0f}' for s in python)} |")
    print(f"| ratio maas / PyTorch | {m / py:.2f}x | | |")
    print(f"| oneDNN 3x3 convolution alone (forward) | | {peak:.0f} | {', '.join(f'{s:.0f}' for s in peaks)} |")


if __name__ == "__main__":
    main()
