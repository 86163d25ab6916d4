#!/usr/bin/env python3
"""Checks that reorganizing the docs lost nothing: every table row, config key, inline code span and
fenced code line of README.md at a git revision (default: main) appears in today's README.md + docs/*.md.

Usage: tests/docs/check_moved.py [REV] [--sentences]
Table rows may have gained a leading "CPU" column (docs/benchmarks.md); whitespace is normalized.
--sentences also lists prose sentences that no longer appear word for word (rewording is allowed;
read the list). Exit 1 when a row, key, code span or code line is missing.
"""
import glob
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CPU_COLUMN = re.compile(r"^\| (CPU|EPYC-AVX2|Xeon-AVX512[^|]*) \| ")


# What the move changed on purpose, and why (shown, not counted as missing).
INTENDED = {
    "row: | `docs/` | images the README shows, made by the pipeline (`docs/cat-why.png`: see Explanations) |":
        "docs/ now holds these pages too (docs/design.md's folder table)",
    "code span: `model.architecture`": "metadata keys written as JSON, so the docs test does not take them for config keys",
    "code span: `model.macs_per_image`": "as above",
    'code span: `model.weights: "int8"`': "as above",
    "key: model.architecture": "as above",
    "key: model.macs_per_image": "as above",
    "key: model.weights": "as above",
    "code line: [--quantize int8 [--calibration-images 1024]] [--tta none|flip|flip_translate]":
        "the maas-export synopsis now lists every flag (docs/export.md)",
}


def norm(text):
    return re.sub(r"\s+", " ", text).strip()


def old_readme(rev):
    return subprocess.run(["git", "-C", ROOT, "show", rev + ":README.md"], check=True, capture_output=True,
                          text=True).stdout


def new_docs():
    paths = [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
    return "\n".join(open(p, encoding="utf-8").read() for p in paths)


def parts(markdown):
    rows, spans, code_lines, prose = [], [], [], []
    in_fence = False
    paragraph = []
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
            continue
        if in_fence:
            if line.strip():
                code_lines.append(norm(line))
            continue
        if line.strip().startswith("|"):
            rows.append(norm(line))
            continue
        if line.strip():
            paragraph.append(line)
        else:
            prose.append(" ".join(paragraph))
            paragraph = []
    prose.append(" ".join(paragraph))
    text = "\n".join(prose + rows)
    spans = [norm(s) for s in re.findall(r"`([^`]+)`", text)]
    keys = sorted(set(re.findall(r"\b((?:data|augment|model|train|eval|distill|prune|distributed|server|batching|"
                                 r"explain)\.[a-z_]+)\b", markdown)))
    return rows, spans, code_lines, keys, [p for p in prose if p.strip()]


def main():
    rev = next((a for a in sys.argv[1:] if not a.startswith("--")), "main")
    old = old_readme(rev)
    new = new_docs()
    new_norm = norm(new)
    new_rows = {CPU_COLUMN.sub("| ", norm(line.strip())) for line in new.splitlines() if line.strip().startswith("|")}
    new_rows.discard("| CPU |")
    rows, spans, code_lines, keys, prose = parts(old)
    missing = []
    # a row may also have gained columns at its end (docs/design.md's folder table)
    def kept(row):
        return row in new_rows or any(n.startswith(row[:-1]) for n in new_rows)
    missing += ["row: " + r for r in rows if not kept(r) and not re.fullmatch(r"\|[-:| ]+\|", r)]
    missing += ["code span: `" + s + "`" for s in spans if s not in new_norm]
    missing += ["code line: " + c for c in code_lines if c not in new_norm]
    missing += ["key: " + k for k in keys if k not in new]
    for m in [m for m in missing if m in INTENDED]:
        print("changed on purpose:", m, "--", INTENDED[m])
    missing = [m for m in missing if m not in INTENDED]
    for m in missing:
        print("missing", m)
    print(f"{len(rows)} table rows, {len(spans)} code spans, {len(code_lines)} code lines, {len(keys)} keys "
          f"of README.md at {rev}: {len(missing)} missing")
    if "--sentences" in sys.argv:
        sentences = [s for p in prose for s in re.split(r"(?<=[.:;])\s+", norm(p)) if len(s) > 30]
        lost = [s for s in sentences if s not in new_norm]
        for s in lost:
            print("reworded:", s)
        print(f"{len(sentences)} sentences, {len(lost)} not word for word")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
