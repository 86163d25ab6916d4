"""sgemm 1024x1024 GFLOP/s of the BLAS torch uses: /usr/bin/python3 tests/bench/blas_ab/sgemm.py THREADS"""
import torch, time, sys
torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else torch.get_num_threads())
a = torch.randn(1024, 1024); b = torch.randn(1024, 1024)
for _ in range(3): torch.mm(a, b)
rates = []
for _ in range(7):
    n = 10; t = time.perf_counter()
    for _ in range(n): torch.mm(a, b)
    rates.append(2 * 1024**3 * n / (time.perf_counter() - t) / 1e9)
rates.sort()
print(f"threads={torch.get_num_threads()} sgemm 1024 GFLOP/s median={rates[3]:.1f} max={rates[-1]:.1f}")
