"""Load test for scripts/bench --load: `livesnap up` (release) with
livesnap-loadgen ramping 1080p30 and 720p30 publishers until snapshots fall
behind (fewer than 99 % of callbacks within one GOP of their due time, p99
over 2 s, or callbacks missing). Reports the most streams held, latencies and
host memory per stream. Everything runs on this machine (loopback only)."""
import json
import os
import re
import subprocess
import tempfile
import threading

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release")
OUT = os.path.join(ROOT, "target", "bench")
SECONDS = int(os.environ.get("LOAD_SECONDS", "30"))
SPREAD_MS = os.environ.get("LOAD_SPREAD_MS", "5000")  # publishers connect over one interval
STEPS = [int(x) for x in os.environ.get("LOAD_STEPS", "10,25,50,100,150,200,250,300,400,500,600,800").split(",")]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def start_service(d):
    with open(os.path.join(d, "spin.toml"), "w") as f:
        f.write("""spin_manifest_version = 2
[[trigger.snapshot]]
domain = "localhost"
app_name = "live"
time_interval = 5
obs_location = { bucket = "snapshots", location = "local" }
image_object_format = "{obs_object}/{domain}/{app}/{stream}/{unix_time_milli}"
call_back_enable = "on"
call_back_url = "http://127.0.0.1:9900/callback"
""")
    with open(os.path.join(d, "runtime-config.toml"), "w") as f:
        # Every publisher comes from 127.0.0.1 and calls back to it: lift the
        # per-client cap and allow the loopback receiver.
        f.write("rtmp_listen = \"127.0.0.1:0\"\nhttp_listen = \"127.0.0.1:0\"\n[delivery]\nworkers = 16\nper_destination = 16\n"
                "[rtmp]\nmax_per_client = 5000\nmax_connections = 5000\n[egress]\nallow = [\"127.0.0.1\"]\n")
    proc = subprocess.Popen([os.path.join(BIN, "livesnap"), "-q", "up", "--runtime-config", "runtime-config.toml"],
                            cwd=d, stderr=subprocess.PIPE, env={**os.environ, "RUST_LOG": "info"})
    for line in proc.stderr:
        m = re.search(r"livesnap is up rtmp=(\S+)", line.decode())
        if m:
            threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
            return proc, m.group(1)
    raise SystemExit("livesnap up did not start")


def step(rtmp, flv, n, pid, prefix):
    peak = [0]
    done = threading.Event()

    def sample():
        while not done.wait(1.0):
            peak[0] = max(peak[0], rss_kib(pid))
    t = threading.Thread(target=sample, daemon=True)
    t.start()
    out = subprocess.run([os.path.join(BIN, "livesnap-loadgen"), "--rtmp", rtmp, "--flv", flv, "--streams", str(n),
                          "--seconds", str(SECONDS), "--prefix", prefix, "--spread-ms", SPREAD_MS], check=True, stdout=subprocess.PIPE).stdout
    done.set()
    r = json.loads(out)
    r["peak_rss_kib"] = peak[0]
    return r


def main():
    results = {}
    for height in (1080, 720):
        flv = os.path.join(OUT, f"in-{height}p-gop2.flv")
        with tempfile.TemporaryDirectory() as d:
            proc, rtmp = start_service(d)
            try:
                idle = rss_kib(proc.pid)
                best = None
                rows = []
                for n in STEPS:
                    r = step(rtmp, flv, n, proc.pid, f"h{height}n{n}s")
                    r["rss_per_stream_kib"] = (r["peak_rss_kib"] - idle) / n
                    ok = (r["on_time_fraction"] >= 0.99 and r["p99_ms"] <= 2000
                          and r["callbacks"] >= 0.9 * n * (SECONDS // 5) and r["publishers_failed"] == 0)
                    r["held"] = ok
                    rows.append(r)
                    print(f"{height}p30 x{n}: on time {r['on_time_fraction']:.3f}, due→callback p50 {r['p50_ms']} ms, "
                          f"p99 {r['p99_ms']} ms (picture→callback p50 {r['picture_p50_ms']}, p99 {r['picture_p99_ms']}), "
                          f"callbacks {r['callbacks']}, RSS/stream {r['rss_per_stream_kib']:.0f} KiB"
                          f"{'' if ok else '  <- falls behind'}", flush=True)
                    if ok:
                        best = r
                    else:
                        break
                held = [r for r in rows if r["held"]]
                # What one more stream costs: the slope of peak RSS from the
                # third held step (fixed costs such as the decoder pool and
                # Wasm instances are in by then) to the best.
                marginal = None
                if len(held) >= 4:
                    a, b = held[2], held[-1]
                    marginal = (b["peak_rss_kib"] - a["peak_rss_kib"]) / (b["streams"] - a["streams"])
                results[f"{height}p30"] = {"best": best, "steps": rows, "idle_rss_kib": idle,
                                           "marginal_rss_per_stream_kib": marginal}
            finally:
                proc.terminate()
                proc.wait()
    with open(os.path.join(OUT, "load.json"), "w") as f:
        json.dump(results, f, indent=2)
    print("\n| stream | most publishers held | due→callback p50 / p99 | picture→callback p50 / p99 | host RSS per stream (peak above idle / n) | RSS per added stream |")
    print("|---|---|---|---|---|---|")
    for k, v in results.items():
        b = v["best"]
        if b:
            m = v["marginal_rss_per_stream_kib"]
            print(f"| {k} | {b['streams']} | {b['p50_ms']} / {b['p99_ms']} ms | {b['picture_p50_ms']} / {b['picture_p99_ms']} ms | "
                  f"{b['rss_per_stream_kib'] / 1024:.2f} MB | "
                  f"{'' if m is None else f'{m / 1024:.2f} MB'} |")
        else:
            print(f"| {k} | none at the first step | | | | |")


if __name__ == "__main__":
    main()
