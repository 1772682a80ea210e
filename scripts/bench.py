"""Driver for scripts/bench: generates inputs with ffmpeg, measures CPU time
of each contender with getrusage on its process, and prints ratios."""
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "target", "bench")
LIVESNAP = os.path.join(ROOT, "target", "release", "livesnap")
SECONDS = int(os.environ.get("BENCH_SECONDS", "40"))
INTERVAL = 5


def cpu_of(cmd, **kw):
    """Runs cmd; returns the CPU seconds (user + system) it used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, **kw)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def make_input(height, gop_s):
    width = {1080: 1920, 720: 1280}[height]
    path = os.path.join(OUT, f"in-{height}p-gop{gop_s}.flv")
    if not os.path.exists(path):
        rate = {1080: "4M", 720: "2M"}[height]
        subprocess.run(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
             "-i", f"testsrc2=size={width}x{height}:rate=30", "-t", str(SECONDS),
             "-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high", "-bf", "3",
             "-b:v", rate, "-maxrate", rate, "-bufsize", rate,
             "-g", str(30 * gop_s), "-keyint_min", str(30 * gop_s), "-sc_threshold", "0",
             "-pix_fmt", "yuv420p", "-f", "flv", path],
            check=True,
        )
    return path


def livesnap(path, mode):
    with tempfile.TemporaryDirectory() as d:
        cmd = [LIVESNAP, "-q", "capture", path, "--json", "--interval", str(INTERVAL),
               "--snapshot-mode", mode, "--out", os.path.join(d, "out")]
        # Compile the components once first, so the cache is warm as in a service.
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, cwd=d)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, cwd=d).stdout.decode()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        summary = json.loads(out.strip().splitlines()[-1])["summary"]
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return cpu, summary["snapshots"]


def ffmpeg(path, keyframes_only):
    with tempfile.TemporaryDirectory() as d:
        cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-threads", "1"]
        if keyframes_only:
            cmd += ["-skip_frame", "nokey"]
        cmd += ["-i", path, "-vf", f"fps=1/{INTERVAL}", "-q:v", "3", os.path.join(d, "%04d.jpg")]
        cpu = cpu_of(cmd)
        return cpu, len(os.listdir(d))


def encoder_bench():
    raw = os.path.join(OUT, "frame-1080p.yuv")
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", make_input(1080, 2),
                    "-frames:v", "1", "-pix_fmt", "yuvj420p", "-f", "rawvideo", raw], check=True)
    runs = []
    for _ in range(3):
        out = subprocess.run([LIVESNAP, "-q", "bench-encode", "--yuv", raw, "--iterations", "60"],
                             check=True, stdout=subprocess.PIPE).stdout
        runs.append(json.loads(out))
    return sorted(runs, key=lambda r: r["wasm_over_native"])[1]  # the median run


def main():
    os.makedirs(OUT, exist_ok=True)
    if "--load-only" in sys.argv:
        for height in (1080, 720):
            make_input(height, 2)
        subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "load.py")], check=True)
        return
    rows = []
    for height in (1080, 720):
        for gop in (2, 8):
            path = make_input(height, gop)
            key_cpu, key_n = livesnap(path, "keyframe")
            nokey_cpu, nokey_n = livesnap(path, "nokeyframe")
            fps_cpu, fps_n = ffmpeg(path, False)
            skip_cpu, skip_n = ffmpeg(path, True)
            rows.append({"input": f"{height}p GOP {gop}s", "snapshots": key_n,
                         "livesnap_keyframe": key_cpu / key_n, "livesnap_nokeyframe": nokey_cpu / nokey_n,
                         "ffmpeg_fps": fps_cpu / fps_n, "ffmpeg_skip_nokey": skip_cpu / max(skip_n, 1)})
    enc = encoder_bench()
    print(f"CPU seconds per snapshot ({SECONDS} s inputs, interval {INTERVAL} s, one run; "
          f"livesnap includes process start and demuxing every frame)\n")
    print("| input | livesnap keyframe | livesnap nokeyframe | ffmpeg fps=1/5 | ffmpeg -skip_frame nokey | keyframe / ffmpeg fps | nokeyframe / ffmpeg fps |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['input']} | {r['livesnap_keyframe']:.4f} | {r['livesnap_nokeyframe']:.4f} | {r['ffmpeg_fps']:.4f} | "
              f"{r['ffmpeg_skip_nokey']:.4f} | 1/{r['ffmpeg_fps'] / r['livesnap_keyframe']:.1f} | "
              f"1/{r['ffmpeg_fps'] / r['livesnap_nokeyframe']:.1f} |")
    print(f"\nJPEG 1080p q80: native {enc['native_ms']:.1f} ms, Wasm {enc['wasm_ms']:.1f} ms "
          f"(x{enc['wasm_over_native']:.2f}); fresh instance {enc['instantiate_us']:.1f} µs")
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump({"cpu_per_snapshot": rows, "encoder": enc}, f, indent=2)
    if "--load" in sys.argv:
        subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "load.py")], check=True)


if __name__ == "__main__":
    main()
