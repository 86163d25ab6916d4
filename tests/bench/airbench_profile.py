#!/usr/bin/python3
"""Where an airbench training step spends its time on this machine, in PyTorch (the same oneDNN
kernels maas-train calls): (1) each convolution shape of the airbench [64, 128, 128] network alone,
forward and backward GFLOP/s, channels-last; (2) torch.profiler's self-time share per operator
for whole training steps. Prints two Markdown tables.

  /usr/bin/python3 tests/bench/airbench_profile.py [--batch 512] [--threads 2]
"""
import argparse, collections, os, sys, time
import torch, torch.nn.functional as F
from torch.profiler import profile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fast_reference import Airbench  # the network as tests/bench/fast_reference.py builds it


def conv_table(batch):
    print("| conv (in -> out, k, input side) | forward GFLOP/s | backward GFLOP/s |")
    print("|---|---:|---:|")
    shapes = [(24, 64, 3, 31), (64, 64, 3, 15), (64, 128, 3, 15), (128, 128, 3, 7), (128, 128, 3, 3)]
    for ci, co, k, side in shapes:
        x = torch.randn(batch, ci, side, side).contiguous(memory_format=torch.channels_last).requires_grad_()
        w = torch.randn(co, ci, k, k).contiguous(memory_format=torch.channels_last).requires_grad_()
        for _ in range(2):
            F.conv2d(x, w, padding=1).backward(torch.ones(batch, co, side, side))
        grad = torch.randn(batch, co, side, side).contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            start = time.perf_counter()
            for _ in range(3):
                F.conv2d(x, w, padding=1)
            forward = (time.perf_counter() - start) / 3
        start = time.perf_counter()
        for _ in range(3):
            F.conv2d(x, w, padding=1).backward(grad)
        backward = (time.perf_counter() - start) / 3 - forward
        flops = 2 * batch * co * ci * k * k * side * side
        print(f"| {ci} -> {co}, {k}x{k}, {side}x{side} | {flops / forward / 1e9:.0f} | {2 * flops / backward / 1e9:.0f} |")


def step_profile(batch):
    model = Airbench([64, 128, 128]).to(memory_format=torch.channels_last)
    model.stem.weight.requires_grad_(False)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9, nesterov=True)
    x = torch.randn(batch, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))

    def step():
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y, label_smoothing=0.2).backward()
        optimizer.step()

    step()
    with profile() as prof:
        for _ in range(2):
            step()
    groups = collections.Counter()
    for e in prof.key_averages():
        name = e.key
        kind = ("convolution backward" if "convolution_backward" in name else
                "convolution forward" if "convolution" in name else
                "GELU" if "gelu" in name else "max-pool" if "max_pool" in name else
                "BatchNorm" if "batch_norm" in name else "other")
        groups[kind] += e.self_cpu_time_total
    total = sum(groups.values())
    print("\n| operator | share of step time |")
    print("|---|---:|")
    for kind, t in groups.most_common():
        print(f"| {kind} | {100 * t / total:.0f}% |")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    conv_table(a.batch)
    step_profile(a.batch)


if __name__ == "__main__":
    main()
