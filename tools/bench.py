#!/usr/bin/env python3
"""Whole-process benchmark: on the same file, in one run, alternate `cp`, `timmconv convert
--in-chans 4`, PyTorch's torch.load + safetensors save_file, and timm's own in_chans=4 path;
report median wall time, ratios to cp and to Python, and peak RSS of each process (from wait4).
Also f32 -> bf16 throughput, `inspect` time, and for the ViTs `--img-size 384` against timm's img_size=384 load.

    .venv/bin/python tools/bench.py [--runs 5] [--dir /tmp/timmconv-bench] [--bin target/release/timmconv]

Make the checkpoints first with tools/make_bench_checkpoints.py. Prints a Markdown table.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINTS = [
    ("vit_base_patch16_224.f32.pth", "vit_base_patch16_224"),
    ("convnext_base.f32.pth", "convnext_base"),
    ("vit_large_patch16_224.f32.pth", "vit_large_patch16_224"),
    ("vit_large_patch16_224.bf16.pth", "vit_large_patch16_224"),
    ("vit_giant_patch14_dinov2.f32.pth", "vit_giant_patch14_dinov2"),
]

PY_SAVE = "import sys, torch, safetensors.torch as st; sd = torch.load(sys.argv[1], map_location='cpu', weights_only=True); st.save_file({k: v.contiguous() for k, v in sd.items()}, sys.argv[2])"
PY_TIMM = (
    "import sys, timm, safetensors.torch as st; m = timm.create_model(sys.argv[3], pretrained=True, "
    "pretrained_cfg_overlay=dict(file=sys.argv[1]), in_chans=4); st.save_file(m.state_dict(), sys.argv[2])"
)
# timm's resolution path: the checkpoint filter resamples pos_embed at load time
PY_TIMM_384 = (
    "import sys, timm, safetensors.torch as st; m = timm.create_model(sys.argv[3], pretrained=True, "
    "pretrained_cfg_overlay=dict(file=sys.argv[1]), img_size=384); st.save_file(m.state_dict(), sys.argv[2])"
)


LAST_CPU = [0.0]


def run(cmd):
    """(wall seconds, peak RSS bytes) of one process; its user + system seconds go to LAST_CPU
    (on a shared machine CPU time moves less than wall time)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    LAST_CPU[0] = usage.ru_utime + usage.ru_stime
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(map(str, cmd))}\n{proc.stderr.read().decode()}")
    return wall, usage.ru_maxrss * 1024


def lookups(binary, n=50):
    """Median and max wall time of registry look-ups (`info`, `models`), whole process."""
    print("\n| command | median ms | max ms |\n|---|---|---|")
    plot = os.path.join(tempfile.gettempdir(), "timmconv-bench-plot.svg")
    for args in (
        ["info", "resnet50"],
        ["info", "--json", "vit_base_patch16_224.augreg2_in21k_ft_in1k"],
        ["models", "--json", "resnet*"],
        ["models", "--pretrained", "--sort", "top1"],
        ["models", "--pretrained", "--plot", plot],
    ):
        ts = sorted(run([binary, *args])[0] for _ in range(n))
        print(f"| timmconv {' '.join(args)} | {statistics.median(ts) * 1000:.1f} | {ts[-1] * 1000:.1f} |")


def batch_bench(binary, zoo, runs):
    """The zoo of tools/make_zoo.py ZOO converted by `batch --jobs 1`, `batch --jobs 2` (each
    hashing and with `--no-hash`) and a shell-style loop of one `convert` per job: files/s, GB/s
    of input, peak RSS, median of runs taken in turn (one round runs every tool once; outputs
    removed between runs and outside the timing, warm page cache), and the throughput of
    `--jobs 2` over `--jobs 1`, paired by round."""
    import json
    zoo = Path(zoo)
    jobs = [json.loads(l) for l in (zoo / "manifest.jsonl").read_text().splitlines()]
    jobs = [j for j in jobs if "corrupt" not in j["input"]]
    manifest = zoo / "bench-manifest.jsonl"
    manifest.write_text("".join(json.dumps(j) + "\n" for j in jobs))
    size = sum((zoo / j["input"]).stat().st_size for j in jobs)

    def clean():
        for j in jobs:
            (zoo / j["output"]).unlink(missing_ok=True)
            (zoo / j["output"]).parent.mkdir(parents=True, exist_ok=True)

    def loop():
        walls, peak = 0.0, 0
        for j in jobs:
            w, r = run([binary, "convert", str(zoo / j["input"]), "-o", str(zoo / j["output"]), "-q", *j["args"]])
            walls, peak = walls + w, max(peak, r)
        return walls, peak

    def batch(*extra):
        return lambda: run([binary, "batch", str(manifest), "-q", *extra])

    tools = {
        "convert per job (loop)": loop,
        "batch --jobs 1": batch("--jobs", "1"),
        "batch --jobs 2": batch("--jobs", "2"),
        "batch --jobs 1 --no-hash": batch("--jobs", "1", "--no-hash"),
        "batch --jobs 2 --no-hash": batch("--jobs", "2", "--no-hash"),
    }
    walls = {name: [] for name in tools}
    rss = dict.fromkeys(tools, 0)
    for _ in range(runs):
        for name, f in tools.items():
            clean()
            w, r = f()
            walls[name].append(w)
            rss[name] = max(rss[name], r)
    clean()
    print(f"\n{len(jobs)} jobs, {size / 1e6:.1f} MB of input; median of {runs} rounds\n")
    print("| tool | median s | files/s | GB/s | peak RSS MB |\n|---|---|---|---|---|")
    for name, ws in walls.items():
        m = statistics.median(ws)
        print(f"| {name} | {m:.2f} | {len(jobs) / m:.1f} | {size / m / 1e9:.3f} | {rss[name] / 1e6:.0f} |")
    for extra in ("", " --no-hash"):
        one, two = walls[f"batch --jobs 1{extra}"], walls[f"batch --jobs 2{extra}"]
        ratios = sorted(a / b for a, b in zip(one, two))
        print(f"\n`--jobs 2` throughput over `--jobs 1`{extra}: median {statistics.median(ratios):.2f}x "
              f"(rounds {ratios[0]:.2f} to {ratios[-1]:.2f})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--dir", default="/tmp/timmconv-bench")
    ap.add_argument("--bin", default=str(ROOT / "target" / "release" / "timmconv"))
    ap.add_argument("--no-python", action="store_true")
    ap.add_argument("--lookups-only", action="store_true")
    ap.add_argument("--no-lookups", action="store_true")
    ap.add_argument("--only", metavar="TEXT", help="only the checkpoints whose file name contains TEXT")
    ap.add_argument("--tools", metavar="TEXT", help="only cp and the tools whose name contains one of TEXT,TEXT,...")
    ap.add_argument("--batch", metavar="ZOO", help="only the batch benchmark over a zoo of tools/make_zoo.py")
    args = ap.parse_args()
    if args.batch:
        batch_bench(args.bin, args.batch, args.runs)
        return
    if args.lookups_only:
        lookups(args.bin)
        return
    py = sys.executable
    tmp = Path(tempfile.mkdtemp(prefix="timmconv-bench-", dir=args.dir))
    rows = []
    try:
        for file, arch in CHECKPOINTS:
            if args.only and args.only not in file:
                continue
            src = Path(args.dir) / file
            if not src.exists():
                print(f"skip {src} (run tools/make_bench_checkpoints.py)", file=sys.stderr)
                continue
            dst = tmp / "out"
            tools = {
                "cp": ["cp", str(src), str(dst)],
                # the floor of a hashing conversion: the input read once through SHA-256
                "openssl sha256": ["openssl", "dgst", "-sha256", str(src)],
                "timmconv in_chans=4": [args.bin, "convert", str(src), "-o", str(dst), "--model", arch, "--in-chans", "4", "--force", "-q"],
                "timmconv in_chans=4 --no-hash": [args.bin, "convert", str(src), "-o", str(dst), "--model", arch, "--in-chans", "4", "--force", "-q", "--no-hash"],
                "timmconv f32->bf16" if ".f32." in file else "timmconv bf16->f32": [
                    args.bin, "convert", str(src), "-o", str(dst), "--dtype", "bf16" if ".f32." in file else "f32", "--force", "-q"],
                "timmconv inspect": [args.bin, "inspect", "--json", str(src)],
            }
            if arch.startswith("vit_"):
                # resolution adaptation: pos_embed resampled, everything else streamed as usual
                tools["timmconv img_size=384"] = [args.bin, "convert", str(src), "-o", str(dst), "--model", arch, "--img-size", "384", "--force", "-q"]
            if not args.no_python:
                tools["torch.load+save_file"] = [py, "-c", PY_SAVE, str(src), str(dst)]
                tools["timm in_chans=4"] = [py, "-c", PY_TIMM, str(src), str(dst), arch]
                if arch.startswith("vit_"):
                    tools["timm img_size=384"] = [py, "-c", PY_TIMM_384, str(src), str(dst), arch]
            if args.tools:
                want = args.tools.split(",")
                tools = {k: v for k, v in tools.items() if k == "cp" or any(w in k for w in want)}
            times = {k: [] for k in tools}
            cpus = {k: [] for k in tools}
            rss = {k: 0 for k in tools}
            for name, cmd in tools.items():  # warm the page cache and the binaries
                run(cmd)
                dst.unlink(missing_ok=True)
            for _ in range(args.runs):
                for name, cmd in tools.items():
                    w, r = run(cmd)
                    times[name].append(w)
                    cpus[name].append(LAST_CPU[0])
                    rss[name] = max(rss[name], r)
                    dst.unlink(missing_ok=True)
            size = src.stat().st_size
            med = {k: statistics.median(v) for k, v in times.items()}
            for name in tools:
                rows.append((file, size, name, med[name], med[name] / med["cp"], med.get("torch.load+save_file", float("nan")) / med[name], rss[name], size / med[name] / 1e9, statistics.median(cpus[name]), min(times[name])))
            print(f"{file}: " + ", ".join(f"{k} {v:.3f}s" for k, v in med.items()), file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"median of {args.runs} runs, warm page cache\n")
    print("| checkpoint | size | tool | median s | min s | median CPU s | x cp | Python / tool | peak RSS MB | GB/s of input |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for file, size, name, m, xcp, xpy, r, gbs, cpu, lo in rows:
        print(f"| {file} | {size / 1e6:.0f} MB | {name} | {m:.3f} | {lo:.3f} | {cpu:.3f} | {xcp:.2f} | {xpy:.1f} | {r / 1e6:.0f} | {gbs:.2f} |")
    if not args.no_lookups:
        lookups(args.bin)


if __name__ == "__main__":
    main()
