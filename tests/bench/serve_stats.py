#!/usr/bin/python3
# What a running maas-serve measured itself while a load ran: reads the model's Triton-style
# statistics (/v2/models/NAME/stats) before and after COMMAND and prints, per request served in
# between, the time in the queue and in the batch's input gathering, forward and output.
# Usage: /usr/bin/python3 tests/bench/serve_stats.py [--url http://127.0.0.1:8000] [--model cifar10] -- COMMAND...
import argparse, json, subprocess, urllib.request

parser = argparse.ArgumentParser()
parser.add_argument("--url", default="http://127.0.0.1:8000")
parser.add_argument("--model", default="cifar10")
parser.add_argument("command", nargs=argparse.REMAINDER)
args = parser.parse_args()
command = args.command[1:] if args.command[:1] == ["--"] else args.command
if not command:
    parser.error("give the load to run after --")


def stats():
    with urllib.request.urlopen(f"{args.url}/v2/models/{args.model}/stats", timeout=10) as response:
        return json.load(response)["model_stats"][0]["inference_stats"]


before = stats()
subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
after = stats()
requests = after["success"]["count"] - before["success"]["count"]
if requests == 0:
    raise SystemExit("no request was served while the command ran")
print(f"{requests} requests; per request, as the server measured:")
for key in ["success", "queue", "compute_input", "compute_infer", "compute_output"]:
    print(f"  {key:15s} {(after[key]['ns'] - before[key]['ns']) / requests / 1000:8.1f} us")
