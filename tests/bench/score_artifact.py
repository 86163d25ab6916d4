#!/usr/bin/python3
"""Scores a maas artifact on CIFAR-10's test_batch.bin in Python (Debian's python3-torch), as a
researcher who was handed the file would: torch.jit.load, raw uint8 pixels in, logits out. Prints
the accuracy next to the one the artifact's metadata records for its run.

  /usr/bin/python3 tests/bench/score_artifact.py runs/fast/model.pt [--root data/cifar-10-batches-bin]
"""
import argparse, json, os
import numpy as np
import torch


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("artifact")
    p.add_argument("--root", default=os.path.join(os.path.dirname(__file__), "../../data/cifar-10-batches-bin"))
    p.add_argument("--batch", type=int, default=500)
    a = p.parse_args()
    extra = {"metadata.json": ""}
    model = torch.jit.load(a.artifact, _extra_files=extra).eval()
    meta = json.loads(extra["metadata.json"])
    raw = np.fromfile(os.path.join(a.root, "test_batch.bin"), np.uint8).reshape(-1, 3073)
    images = torch.from_numpy(raw[:, 1:].reshape(-1, 3, 32, 32).copy())
    labels = torch.from_numpy(raw[:, 0].astype(np.int64))
    correct = 0
    with torch.no_grad():
        for i in range(0, len(labels), a.batch):
            correct += (model(images[i:i + a.batch]).argmax(1) == labels[i:i + a.batch]).sum().item()
    acc = correct / len(labels)
    training = meta.get("training", {})
    print(json.dumps({"images": len(labels), "python_test_acc": acc, "tta": meta.get("tta"),
                      "run_best_test_acc": training.get("best_test_acc"),
                      "run_final_test_acc": training.get("final_test_acc"),
                      "difference_points": None if training.get("best_test_acc") is None
                      else round(100 * (acc - training["best_test_acc"]), 3)}))


if __name__ == "__main__":
    main()
