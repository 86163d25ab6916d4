#!/usr/bin/python3
# Does a forward run slower after its thread slept? Batch-1 forwards of an artifact (1 thread) with a
# gap before each: busy-waiting (the core stays busy) or sleeping (an idle vCPU may halt). On a VM
# with halting idle vCPUs the slept variant runs up to 2x slower: the reason for maas-serve's
# batching.idle_spin_us. Prints the median forward time per gap.
# Usage: /usr/bin/python3 tests/bench/cold_forward.py model.pt
import statistics, sys, time
import torch

torch.set_num_threads(1)
module = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.load(sys.argv[1]).eval()))
image = torch.randint(0, 256, (1, 3, 32, 32), dtype=torch.uint8)


def forward_times(gap_s, sleep):
    times = []
    for _ in range(2000):
        if gap_s and sleep:
            time.sleep(gap_s)
        elif gap_s:
            start = time.perf_counter()
            while time.perf_counter() - start < gap_s:
                pass
        start = time.perf_counter()
        module(image)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


with torch.no_grad():
    for _ in range(50):
        module(image)
    print("| gap before each forward | busy-waiting: forward p50 us | sleeping: forward p50 us |")
    print("|---:|---:|---:|")
    for gap in [0, 0.0003, 0.001]:
        print(f"| {gap * 1e6:.0f} us | {forward_times(gap, False):.0f} | {forward_times(gap, True):.0f} |")
