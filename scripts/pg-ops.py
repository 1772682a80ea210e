"""PostgreSQL operations per snapshot with several nodes: a PostgreSQL
server (Debian's binaries, a temporary cluster, pg_stat_statements), two
`livesnap up` nodes sharing it with a shared fs bucket, and
livesnap-loadgen publishing STREAMS small streams (half to each node) at
interval 5 s for SECONDS. Prints the statements run while the streams were
live: per second, per 100 streams, per snapshot, and the busiest ones.
Loopback only. Usage: python3 scripts/pg-ops.py [STREAMS] [SECONDS]
(env LIVESNAP_BIN: the folder of livesnap and livesnap-loadgen,
default target/release)."""
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.abspath(os.environ.get("LIVESNAP_BIN", os.path.join(ROOT, "target", "release")))
STREAMS = int(sys.argv[1]) if len(sys.argv) > 1 else 100
SECONDS = int(sys.argv[2]) if len(sys.argv) > 2 else 60


def pg_bin():
    versions = sorted(int(v) for v in os.listdir("/usr/lib/postgresql") if v.isdigit())
    return f"/usr/lib/postgresql/{versions[-1]}/bin"


def as_server_user():
    """The server refuses root: run it as `postgres` then."""
    if os.geteuid() != 0:
        return {}
    pw = pwd.getpwnam("postgres")
    return {"user": pw.pw_uid, "group": pw.pw_gid}


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def metric(http, name):
    with urllib.request.urlopen(f"http://127.0.0.1:{http}/metrics", timeout=10) as r:
        m = re.search(rb"^" + name.encode() + rb" (\d+)", r.read(), re.M)
    return int(m.group(1)) if m else 0


def main():
    work = tempfile.mkdtemp(prefix="livesnap-pg-ops-")
    os.chmod(work, 0o755)
    run_as = as_server_user()
    pgdir = os.path.join(work, "pg")
    os.mkdir(pgdir)
    if run_as:
        os.chown(pgdir, run_as["user"], run_as["group"])
    port = free_port()
    bin_dir = pg_bin()
    subprocess.run([f"{bin_dir}/initdb", "-D", f"{pgdir}/data", "-U", "postgres", "--auth=trust", "--no-sync"],
                   check=True, stdout=subprocess.DEVNULL, **run_as)
    server = subprocess.Popen([f"{bin_dir}/postgres", "-D", f"{pgdir}/data", "-p", str(port), "-k", pgdir,
                               "-c", "listen_addresses=127.0.0.1", "-c", "shared_preload_libraries=pg_stat_statements",
                               "-c", "pg_stat_statements.track=all"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, **run_as)
    for line in server.stderr:
        if "ready to accept connections" in line:
            break
    psql = lambda db, sql: subprocess.run(  # noqa: E731
        [f"{bin_dir}/psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", db, "-tA", "-c", sql],
        check=True, capture_output=True, text=True, **run_as).stdout.strip()
    nodes, loadgens = [], []
    try:
        psql("postgres", "CREATE DATABASE livesnap")
        psql("livesnap", "CREATE EXTENSION pg_stat_statements")
        url = f"postgres://postgres@127.0.0.1:{port}/livesnap"
        clip = os.path.join(work, "clip.flv")
        subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30", "-t", "10",
                        "-c:v", "libx264", "-profile:v", "baseline", "-g", "30", "-pix_fmt", "yuv420p", "-f", "flv", clip],
                       check=True)
        shots = os.path.join(work, "shots")
        env = dict(os.environ, LIVESNAP_ACCESS_KEY="AKPGOPS", LIVESNAP_SECRET_KEY="pg-ops-secret-key-0123456789",
                   LIVESNAP_TOKEN="pg-ops-token-0123456789abcdef", LIVESNAP_EGRESS_ALLOW="127.0.0.1",
                   RUST_LOG="warn,livesnap_server::service=info")
        callbacks = [free_port() for _ in range(2)]
        templates = "".join(
            f'[[trigger.snapshot]]\ndomain = "localhost"\napp_name = "n{i}"\ntime_interval = 5\n'
            f'obs_location = {{ bucket = "snapshots", location = "local" }}\ncall_back_enable = "on"\n'
            f'call_back_url = "http://127.0.0.1:{callbacks[i]}/callback"\n' for i in range(2))
        for i in range(2):
            d = os.path.join(work, f"node{i}")
            os.mkdir(d)
            with open(os.path.join(d, "runtime-config.toml"), "w") as f:
                f.write(f'state = "{url}"\nnode_id = "node{i}"\n[[bucket]]\nname = "snapshots"\nbackend = "fs"\n'
                        f'shared = true\npath = "{shots}"\n')
            with open(os.path.join(d, "spin.toml"), "w") as f:
                f.write("spin_manifest_version = 2\n" + templates)
            rtmp, http = free_port(), free_port()
            p = subprocess.Popen([os.path.join(BIN, "livesnap"), "up", "--runtime-config", "runtime-config.toml",
                                  "--rtmp-listen", f"127.0.0.1:{rtmp}", "--http-listen", f"127.0.0.1:{http}"],
                                 cwd=d, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            for line in p.stderr:
                if "livesnap is up" in line:
                    break
            # Drained so a chatty node never blocks on a full pipe.
            threading.Thread(target=p.stderr.read, daemon=True).start()
            nodes.append((p, rtmp, http))
        psql("livesnap", "SELECT pg_stat_statements_reset()")
        before = [metric(http, "livesnap_snapshots_total") for _, _, http in nodes]
        started = time.monotonic()
        for i, (_, rtmp, _) in enumerate(nodes):
            loadgens.append(subprocess.Popen(
                [os.path.join(BIN, "livesnap-loadgen"), "--rtmp", f"127.0.0.1:{rtmp}", "--app", f"n{i}", "--flv", clip,
                 "--streams", str(STREAMS // 2), "--seconds", str(SECONDS), "--listen", f"127.0.0.1:{callbacks[i]}",
                 "--prefix", f"n{i}"], stdout=subprocess.PIPE, text=True))
        results = [json.loads(lg.communicate()[0].strip().splitlines()[-1]) for lg in loadgens]
        elapsed = time.monotonic() - started
        snapshots = sum(metric(http, "livesnap_snapshots_total") - b for (_, _, http), b in zip(nodes, before))
        rows = psql("livesnap", "SELECT calls, regexp_replace(left(query, 90), '\\s+', ' ', 'g') FROM pg_stat_statements "
                                "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'livesnap') "
                                "AND query NOT LIKE '%pg_stat_statements%' ORDER BY calls DESC")
        calls = [(int(c), q) for c, q in (r.split("|", 1) for r in rows.splitlines() if r)]
        total = sum(c for c, _ in calls)
        print(json.dumps({
            "streams": STREAMS, "nodes": 2, "seconds": round(elapsed, 1), "snapshots": snapshots,
            "callbacks": sum(r["callbacks"] for r in results),
            "statements": total, "statements_per_s": round(total / elapsed, 1),
            "statements_per_s_per_100_streams": round(total / elapsed * 100 / STREAMS, 1),
            "statements_per_snapshot": round(total / max(snapshots, 1), 2),
        }))
        for c, q in calls[:10]:
            print(f"{c:8d}  {q}")
    finally:
        for lg in loadgens:
            lg.kill()
        for p, _, _ in nodes:
            p.terminate()
            p.wait()
        server.terminate()
        server.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
