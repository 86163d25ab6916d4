#!/usr/bin/python3
"""Where a float32 and a bfloat16-autocast training step of the fast network spend their time, from
PyTorch's profiler: fast_reference.py's Airbench (channels-last, stem frozen), batch 512 of random
images, Nesterov SGD, 2 warm-up steps, then img/s over 3 steps and the profiler's table (self CPU
time) over 3 more. ATen's kernels follow ATEN_CPU_CAPABILITY from the environment.

  ATEN_CPU_CAPABILITY=avx512 /usr/bin/python3 tests/bench/bf16_profile.py float32|bfloat16 [--widths 64 128 128]
"""
import argparse, os, sys, time
import torch, torch.nn.functional as F
from torch.profiler import profile, ProfilerActivity

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fast_reference import Airbench  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("precision", choices=["float32", "bfloat16"])
    p.add_argument("--widths", type=int, nargs=3, default=[64, 128, 128])
    p.add_argument("--threads", type=int, default=os.cpu_count())
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    model = Airbench(a.widths).to(memory_format=torch.channels_last)
    model.stem.weight.requires_grad_(False)
    optimizer = torch.optim.SGD([q for q in model.parameters() if q.requires_grad], lr=0.1, momentum=0.85, nesterov=True)
    x = torch.randn(512, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (512,))

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.precision == "bfloat16"):
            loss = F.cross_entropy(model(x), y, label_smoothing=0.2)
        loss.backward()
        optimizer.step()

    for _ in range(2):
        step()
    start = time.perf_counter()
    for _ in range(3):
        step()
    print(f"{a.precision}: {3 * 512 / (time.perf_counter() - start):.0f} img/s")
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(3):
            step()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


if __name__ == "__main__":
    main()
