#!/usr/bin/env python3
"""How an API template write scales with the number of templates.

Starts `livesnap up` (target/release/livesnap, else target/debug/livesnap,
or $LIVESNAP_BIN) in a temporary folder, creates N templates through the API
(X-Auth-Token) and reports the median time of a create among the first 20
and the last 20, and their ratio (1.0 = a write costs the same however many
templates exist).

usage: scripts/api_writes.py [N]   (default 500)
"""
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def binary():
    if os.environ.get("LIVESNAP_BIN"):
        return os.environ["LIVESNAP_BIN"]
    for profile in ("release", "debug"):
        path = os.path.join(ROOT, "target", profile, "livesnap")
        if os.path.exists(path):
            return path
    sys.exit("build livesnap first (cargo build --release --bin livesnap)")


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    with tempfile.TemporaryDirectory(prefix="livesnap-writes") as d:
        with open(os.path.join(d, "runtime-config.toml"), "w") as f:
            f.write(f'rtmp_listen = "127.0.0.1:0"\nhttp_listen = "127.0.0.1:0"\n[quotas]\nmax_templates = {n}\n')
        proc = subprocess.Popen([binary(), "up", "--runtime-config", "runtime-config.toml"], cwd=d,
                                stderr=subprocess.PIPE, env={**os.environ, "RUST_LOG": "warn,livesnap_server=info"})
        try:
            http = None
            for line in proc.stderr:
                m = re.search(r"livesnap is up .*http=(\S+)", line.decode())
                if m:
                    http = m.group(1)
                    break
            creds = open(os.path.join(d, ".livesnap", "api-credentials.toml")).read()
            project = re.search(r'project_id = "([^"]+)"', creds).group(1)
            token = re.search(r'token = "([^"]+)"', creds).group(1)
            url = f"http://{http}/v1/{project}/stream/snapshot"
            times = []
            for i in range(n):
                body = json.dumps({"domain": "localhost", "app_name": f"app{i}", "time_interval": 5,
                                   "obs_location": {"bucket": "snapshots", "location": "local"}}).encode()
                req = urllib.request.Request(url, data=body, method="POST",
                                             headers={"X-Auth-Token": token, "Content-Type": "application/json"})
                start = time.perf_counter()
                with urllib.request.urlopen(req) as r:
                    assert r.status == 201, r.status
                times.append(time.perf_counter() - start)
            first = statistics.median(times[:20]) * 1000
            last = statistics.median(times[-20:]) * 1000
            print(f"{n} templates: create median {first:.2f} ms (first 20) -> {last:.2f} ms (last 20), ratio {last / first:.2f}")
        finally:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
