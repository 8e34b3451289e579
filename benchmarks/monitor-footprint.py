#!/usr/bin/env python3
"""Measures the controller's footprint and report staleness against a fresh sandbox.

Starts a 3-server sandbox and `switchyard run` (defaults: probe every 500 ms, heartbeat every 250 ms),
then for DURATION seconds samples:
  - CPU: utime+stime of the switchyard process from /proc (percent of one core), and the same for the
    three mariadbd processes as a baseline measured in the same run;
  - RSS of switchyard (VmRSS);
  - staleness: GET /v1/status every 100 ms and record each server's last_seen_ms_ago (how old the
    newest successful probe is when a report is read);
  - the sandbox `up` wall time.
Usage: benchmarks/monitor-footprint.py [DURATION_SECONDS]   (run `swift build` first;
SWITCHYARD_BIN=.build/release/switchyard to measure a release build)
"""
import json, os, signal, statistics, subprocess, sys, tempfile, time, urllib.request

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
binary = os.environ.get("SWITCHYARD_BIN", os.path.join(root, ".build/debug/switchyard"))
duration = float(sys.argv[1]) if len(sys.argv) > 1 else 60.0
directory = tempfile.mkdtemp(prefix="switchyard-bench-")
base_port, admin_port = 23311, 26080

def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024

started = time.monotonic()
subprocess.run([binary, "sandbox", "up", "--dir", directory, "--base-port", str(base_port),
                "--admin-port", str(admin_port)], check=True, stdout=subprocess.DEVNULL)
up_seconds = time.monotonic() - started
manifest = json.load(open(os.path.join(directory, "sandbox.json")))
token = open(manifest["secrets"]["admin"]).read().strip()
log = open(os.path.join(directory, "run.log"), "w")
daemon = subprocess.Popen([binary, "run", "--config", manifest["config"]], stdout=log, stderr=log)
try:
    def status():
        request = urllib.request.Request(f"http://127.0.0.1:{admin_port}/v1/status",
                                         headers={"Authorization": f"Bearer {token}"})
        return json.load(urllib.request.urlopen(request, timeout=5))
    for _ in range(100):
        try:
            status(); break
        except Exception:
            time.sleep(0.1)
    time.sleep(3)  # warm-up: connections open, first heartbeats written
    servers = [i["pid"] for i in manifest["instances"]]
    # Phase 1: footprint with nobody reading the API (the monitor's own cost).
    cpu0, db0, t0 = cpu_seconds(daemon.pid), sum(cpu_seconds(p) for p in servers), time.monotonic()
    rss = []
    while time.monotonic() - t0 < duration:
        rss.append(rss_mb(daemon.pid))
        time.sleep(0.5)
    elapsed = time.monotonic() - t0
    cpu = (cpu_seconds(daemon.pid) - cpu0) / elapsed * 100
    db = (sum(cpu_seconds(p) for p in servers) - db0) / elapsed * 100
    # Phase 2: staleness, reading /v1/status every 100 ms.
    ages, t1 = [], time.monotonic()
    api0 = cpu_seconds(daemon.pid)
    while time.monotonic() - t1 < duration / 2:
        document = status()
        ages += [s["last_seen_ms_ago"] for s in document["servers"] if s.get("last_seen_ms_ago") is not None]
        time.sleep(0.1)
    api_cpu = (cpu_seconds(daemon.pid) - api0) / (time.monotonic() - t1) * 100
    ages.sort()
    print(f"sandbox up (3 servers): {up_seconds:.1f} s")
    print(f"switchyard CPU: {cpu:.2f}% of one core over {elapsed:.0f} s "
          f"(the 3 mariadbd together: {db:.2f}%; ratio {cpu / db if db else float('nan'):.2f})")
    print(f"switchyard RSS: median {statistics.median(rss):.1f} MB, max {max(rss):.1f} MB")
    print(f"switchyard CPU while serving /v1/status 10 times a second: {api_cpu:.2f}% of one core")
    print(f"report staleness (last_seen_ms_ago over {len(ages)} readings): "
          f"p50 {ages[len(ages) // 2]} ms, p99 {ages[int(len(ages) * 0.99)]} ms, max {ages[-1]} ms")
finally:
    daemon.send_signal(signal.SIGTERM)
    daemon.wait(timeout=10)
    subprocess.run([binary, "sandbox", "down", "--dir", directory], stdout=subprocess.DEVNULL)
    subprocess.run(["rm", "-rf", directory])
