#!/usr/bin/python3
"""Runs the BLAS A/B program (bench.cpp) only when the machine is otherwise idle and marks runs
during which other processes used the CPU. docs/benchmarks.md "BLAS":
  /usr/bin/python3 tests/bench/blas_ab/drive.py LABEL REPEATS build-blas/bench"""
import os, subprocess, sys, time, json, re
NCPU = os.cpu_count()
HZ = os.sysconf("SC_CLK_TCK")
def busy():
    f = [int(v) for v in open("/proc/stat").readline().split()[1:]]
    return (sum(f) - f[3] - f[4]) / HZ  # minus idle, iowait (seconds)
def wait_idle(maxload=0.05, window=2.0, give_up=900):
    t0 = time.time()
    while time.time() - t0 < give_up:
        b0 = busy(); time.sleep(window); load = (busy() - b0) / (window * NCPU)
        if load < maxload: return load
    return None
def run(args, env_threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(env_threads))
    b0, w0 = busy(), time.time()
    p = subprocess.Popen([sys.argv[3]] + args, stdout=subprocess.PIPE, text=True, env=env)
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.time() - w0
    foreign = max(0.0, (busy() - b0) - (ru.ru_utime + ru.ru_stime)) / (wall * NCPU)
    return out, foreign
label, reps = sys.argv[1], int(sys.argv[2])
configs = [["abtrain", "X", "2", "32", "200", "5"], ["abtrain", "X", "1", "32", "200", "5"],
           ["abinfer", "X", "1", "32", "300", "10"], ["abinfer", "X", "1", "1", "3000", "100"]]
log = open(os.devnull, "w")
for cfg in configs:
    clean = 0; tries = 0
    while clean < reps and tries < reps * 4:
        tries += 1
        idle = wait_idle()
        out, foreign = run(cfg, cfg[2])
        ok = foreign < 0.10
        clean += ok
        for line in out.strip().splitlines():
            rec = f"{label} foreign={foreign:.3f} {'clean' if ok else 'DIRTY'} {line}"
            print(rec, flush=True); log.write(rec + "\n"); log.flush()
