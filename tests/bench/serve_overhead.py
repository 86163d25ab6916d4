#!/usr/bin/python3
"""Where a served request's CPU goes: drives a running maas-serve with wrk (Debian package `wrk`,
one epoll thread, so the client costs little) and reads the server's CPU time from /proc, for
  - GET /v2/health/live                      (HTTP floor: httplib + loopback TCP)
  - POST of a v2 binary body to an unknown model (the same, plus receiving the body; answered 404)
  - POST of the same body to the model       (everything: parse, queue, batch, forward, answer)
and each request size. Prints a Markdown table: requests/s, server CPU microseconds per request
and per image.

  build/bin/maas-serve --model cifar10=runs/seed/model.pt &
  /usr/bin/python3 tests/bench/serve_overhead.py [--url http://127.0.0.1:8000] [--model cifar10]
"""
import argparse, json, os, re, subprocess, sys, tempfile, time, urllib.parse, urllib.request

TICKS = os.sysconf("SC_CLK_TCK")


def server_pid(url):
    port = urllib.parse.urlsplit(url).port or 80
    out = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True).stdout
    match = re.search(r"pid=(\d+)", out)
    if not match:
        sys.exit(f"no process listens on port {port}: start maas-serve first")
    return int(match.group(1))


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def binary_body(shape):
    count = shape[0] * shape[1] * shape[2] * shape[3]
    header = json.dumps({"inputs": [{"name": "image", "shape": shape, "datatype": "UINT8",
                                     "parameters": {"binary_data_size": count}}],
                         "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}]})
    return header, header.encode() + os.urandom(count)


def run_wrk(url, connections, seconds, script):
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s"] + (["-s", script] if script else []) + [url]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return requests, int(bad.group(1)) if bad else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--model", default="cifar10")
    parser.add_argument("--connections", type=int, default=64, help="at most; fewer where the queue would overflow")
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--images-per-request", type=int, nargs="+", default=[1, 8, 32])
    args = parser.parse_args()
    if subprocess.run(["which", "wrk"], capture_output=True).returncode != 0:
        sys.exit("wrk is missing: apt-get install wrk")
    pid = server_pid(args.url)
    meta = json.load(urllib.request.urlopen(f"{args.url}/v2/models/{args.model}"))
    _, channels, height, width = meta["inputs"][0]["shape"]
    queue = json.load(urllib.request.urlopen(f"{args.url}/v2/models/{args.model}/config"))["dynamic_batching"]["max_queue_images"]

    print("| request | images/request | connections | requests/s | server CPU us/request | server CPU us/image | non-2xx |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        cases = [("GET /v2/health/live", "/v2/health/live", None, 1)]
        for n in args.images_per_request:
            header, body = binary_body([n, channels, height, width])
            body_path, script = os.path.join(tmp, f"body{n}.bin"), os.path.join(tmp, f"post{n}.lua")
            open(body_path, "wb").write(body)
            open(script, "w").write(
                f'local f = io.open("{body_path}", "rb")\nwrk.body = f:read("*all")\nf:close()\n'
                f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/octet-stream"\n'
                f'wrk.headers["Inference-Header-Content-Length"] = "{len(header)}"\n')
            if n == args.images_per_request[0]:
                cases.append(("binary POST, unknown model (404)", "/v2/models/no-such-model/infer", script, n))
            cases.append(("binary POST infer", f"/v2/models/{args.model}/infer", script, n))
        for label, path, script, n in cases:
            connections = max(1, min(args.connections, queue // n))  # more would overflow the queue (503s)
            run_wrk(args.url + path, connections, 1, script)  # warm-up
            time.sleep(1)  # wrk stops with requests in flight: let the server's queue drain
            before = cpu_seconds(pid)
            requests, bad = run_wrk(args.url + path, connections, args.seconds, script)
            cpu_us = (cpu_seconds(pid) - before) * 1e6 / requests
            per_image = f"{cpu_us / n:.0f}" if "infer" in label and "404" not in label else "-"
            print(f"| {label} | {n} | {connections} | {requests / args.seconds:.0f} | {cpu_us:.0f} | {per_image} | {bad} |", flush=True)
    print(f"\nwrk -t1, {args.seconds} s per row, against pid {pid} on {args.url}")


if __name__ == "__main__":
    main()
