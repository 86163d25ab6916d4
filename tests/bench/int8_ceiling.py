#!/usr/bin/python3
"""How much faster int8 can make the airbench network on this machine, from PyTorch's own kernels.

Issue 12 asks int8 for >= 2.5x the float32 images/s of the fast config's network at batch 32. This
measures the ceiling with Debian's torch 1.13 (the kernels maas uses), one thread, batch 32:
  1. each 3x3 convolution shape of airbench [64, 128, 128] alone: float32 (frozen +
     optimize_for_inference, channels-last, what maas-serve runs) against quantized::conv2d
     (onednn engine, quint8 activations, per-channel qint8 weights);
  2. the whole network in four variants, activation (gelu | relu) x block order (conv-pool-BN, as
     airbench, | conv-BN-pool, where BatchNorm folds into the convolution), quantized by
     torch.ao.quantization.quantize_jit (graph mode, the passes maas-export calls from C++).
Weights are random (speed does not depend on them). Runs alternate; ratios are per round.
Usage: /usr/bin/python3 tests/bench/int8_ceiling.py [--rounds 3] [--iterations 20]
"""
import argparse
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.ao.quantization import MinMaxObserver, PerChannelMinMaxObserver, QConfig, quantize_jit


def seconds_per_call(fn, iterations):
    for _ in range(3):
        fn()
    start = time.perf_counter()
    for _ in range(iterations):
        fn()
    return (time.perf_counter() - start) / iterations


def alternate(run_float, run_int8, rounds, iterations):
    """Seconds per call of each, over `rounds` alternating rounds: ([float32...], [int8...])."""
    float_seconds, int8_seconds = [], []
    with torch.no_grad():
        for _ in range(rounds):
            float_seconds.append(seconds_per_call(run_float, iterations))
            int8_seconds.append(seconds_per_call(run_int8, iterations))
    return float_seconds, int8_seconds


def float_path(module, example):
    return torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(module.eval(), example)))


class Group(nn.Module):
    def __init__(self, cin, cout, activation, bn_before_pool):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.activation = activation
        self.bn_before_pool = bn_before_pool

    def forward(self, x):
        if self.bn_before_pool:
            x = F.max_pool2d(self.activation(self.bn1(self.conv1(x))), 2)
        else:
            x = self.activation(self.bn1(F.max_pool2d(self.conv1(x), 2)))
        return self.activation(self.bn2(self.conv2(x)))


class Airbench(nn.Module):
    def __init__(self, activation, bn_before_pool, widths=(64, 128, 128)):
        super().__init__()
        self.stem = nn.Conv2d(3, 24, 2)
        self.group1 = Group(24, widths[0], activation, bn_before_pool)
        self.group2 = Group(widths[0], widths[1], activation, bn_before_pool)
        self.group3 = Group(widths[1], widths[2], activation, bn_before_pool)
        self.fc = nn.Linear(widths[2], 10, bias=False)
        self.activation = activation

    def forward(self, x):
        x = self.group3(self.group2(self.group1(self.activation(self.stem(x)))))
        return self.fc(F.adaptive_max_pool2d(x, 1).flatten(1))


def quantized(module, example):
    qconfig = QConfig(activation=MinMaxObserver.with_args(reduce_range=True),
                      weight=PerChannelMinMaxObserver.with_args(dtype=torch.qint8, qscheme=torch.per_channel_symmetric))
    traced = torch.jit.trace(module.eval(), example)
    calibrate = lambda m, batches: [m(b) for b in batches]
    return quantize_jit(traced, {"": qconfig}, calibrate, [[torch.randn(64, *example.shape[1:])]])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=20)
    args = parser.parse_args()
    torch.backends.quantized.engine = "onednn"
    torch.set_num_threads(1)
    torch.manual_seed(0)
    batch = 32
    print("| convolution (3x3, batch 32) | float32 GFLOP/s | int8 GOP/s | int8 / float32 (median) | rounds |")
    print("|---|---:|---:|---:|---|")
    for cin, cout, size in [(24, 64, 31), (64, 64, 15), (64, 128, 15), (128, 128, 7), (128, 128, 3)]:
        x = torch.randn(batch, cin, size, size).contiguous(memory_format=torch.channels_last)
        conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False).eval()
        fast = float_path(conv, x)
        qconv = torch.ao.nn.quantized.Conv2d(cin, cout, 3, padding=1, bias=False)
        scales = conv.weight.detach().abs().flatten(1).amax(1) / 127
        qweight = torch.quantize_per_channel(conv.weight.detach(), scales, torch.zeros(cout, dtype=torch.long), 0,
                                             torch.qint8)
        qconv.set_weight_bias(qweight, None)
        qconv.scale, qconv.zero_point = 0.05, 64
        qx = torch.quantize_per_tensor(x, 0.05, 64, torch.quint8)
        ops = 2 * batch * cin * cout * 9 * size * size
        tfs, tqs = alternate(lambda: fast(x), lambda: qconv(qx), args.rounds, args.iterations)
        ratios = [tf / tq for tf, tq in zip(tfs, tqs)]
        flops, iops = [ops / tf / 1e9 for tf in tfs], [ops / tq / 1e9 for tq in tqs]
        print(f"| {cin}->{cout} at {size}x{size} | {statistics.median(flops):.0f} | {statistics.median(iops):.0f} | "
              f"{statistics.median(ratios):.2f}x | {', '.join(f'{r:.2f}' for r in ratios)} |")

    print()
    print("| airbench [64, 128, 128] variant | float32 img/s | int8 img/s | int8 / float32 (median) | dequantize nodes | rounds |")
    print("|---|---:|---:|---:|---:|---|")
    x = torch.randn(batch, 3, 32, 32)
    for name, activation in [("gelu", F.gelu), ("relu", F.relu)]:
        for order, bn_before_pool in [("conv-pool-BN", False), ("conv-BN-pool", True)]:
            net = Airbench(activation, bn_before_pool).eval()
            for m in net.modules():  # trained-looking statistics, so BatchNorm folding is not a no-op
                if isinstance(m, nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.5, 0.5)
                    m.running_var.uniform_(0.5, 2.0)
            fast = float_path(net, x)
            q = quantized(net, x)
            dequantize = str(q.forward.graph).count("aten::dequantize")
            tfs, tqs = alternate(lambda: fast(x), lambda: q(x), args.rounds, args.iterations)
            ratios = [tf / tq for tf, tq in zip(tfs, tqs)]
            fs, qs = [batch / tf for tf in tfs], [batch / tq for tq in tqs]
            print(f"| {name}, {order} | {statistics.median(fs):.0f} | {statistics.median(qs):.0f} | "
                  f"{statistics.median(ratios):.2f}x | {dequantize} | {', '.join(f'{r:.2f}' for r in ratios)} |")


if __name__ == "__main__":
    main()
