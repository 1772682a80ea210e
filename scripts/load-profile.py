"""Where livesnap's CPU goes under load: `livesnap up` on core 0 and
livesnap-loadgen on core 1 as in scripts/load.py, N publishers of 1080p or
720p, `perf record` on livesnap for 20 s once they all publish, then the
share of samples per binary and the busiest symbols. Needs a release build
(scripts/bench builds one) and perf.

    python3 scripts/load-profile.py 720 400          # interval 5 s
    python3 scripts/load-profile.py 720 100 ingest   # no snapshot due
"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("LOAD_SECONDS", "45")
os.environ.setdefault("LIVESNAP_PERFMAP", "1")  # names Wasm functions
import load  # noqa: E402


def main():
    height, n = int(sys.argv[1]), int(sys.argv[2])
    app = sys.argv[3] if len(sys.argv) > 3 else "live"
    flv = os.path.join(load.OUT, f"in-{height}p-gop2.flv")
    if not os.path.exists(flv):
        raise SystemExit(f"{flv} is missing: run scripts/bench --load-only once")
    data = os.path.join(load.OUT, "perf.data")
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        proc, rtmp, _ = load.start_service(d)
        try:
            gen = load.loadgen(rtmp, flv, n, "prof", app=app)
            time.sleep(load.SPREAD_MS / 1000 + 7)
            c0, t0 = load.cpu_seconds(proc.pid), time.monotonic()
            subprocess.run(["perf", "record", "-F", "999", "-g", "-p", str(proc.pid), "-o", data, "--", "sleep", "20"],
                           check=True, capture_output=True)
            c1, t1 = load.cpu_seconds(proc.pid), time.monotonic()
            gen.communicate()
        finally:
            proc.terminate()
            proc.wait()
    print(f"livesnap: {c1 - c0:.2f} CPU s in {t1 - t0:.1f} s for {n} {height}p30 publishers "
          f"({1000 * (c1 - c0) / (n * (t1 - t0)):.3f} ms per stream-second)")
    for sort in ("dso", "sym"):
        out = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", sort, "-g", "none",
                              "--percent-limit", "1.5"], capture_output=True, text=True).stdout
        print("\n".join(line for line in out.splitlines() if line.strip() and not line.startswith("#")))


if __name__ == "__main__":
    main()
