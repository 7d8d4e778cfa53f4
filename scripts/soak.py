#!/usr/bin/env python3
"""A soak of pushkit under faults, with a report (RELIABILITY.md has the
results). Not a CI test: it runs for --minutes (10 by default) and needs
root (it mounts a tmpfs), the release binary and victoria-metrics.

    sudo python3 scripts/soak.py [--minutes 10] [--pushkit target/release/pushkit]

What it does:
- mounts a small tmpfs and runs pushkit with persistence_dir and queue_dir
  on it (one shared log), forwarding by remote write to VictoriaMetrics;
  with --two-filesystems, persistence_dir goes on a second tmpfs (a log
  each) and the fills take turns between the two;
- 8 connections push, each to groups of its own, a mix of valid pushes
  (PUT and POST, each with a unique `seq` label) and invalid ones (a bad
  value, an empty job, a type that conflicts with other groups);
- every 30 s VictoriaMetrics goes down (15 s) and comes back;
- every 45 s the disk is filled to the last block by a ballast file, removed
  15 s later;
- every 10 s it prints pushkit's RSS and the counts.

At the end it brings everything back, waits for the queue to drain and
checks, from VictoriaMetrics' export and pushkit's exposition:
- every acknowledged push was delivered (0 lost);
- no refused push was delivered or stored;
- each group holds its last acknowledged push.
It exits 1 if any check fails.
"""

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

CONNECTIONS = 8
GROUPS_PER_CONNECTION = 4


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


class Counts:
    def __init__(self):
        self.lock = threading.Lock()
        self.acked = set()  # seq ids answered 200
        self.refused = set()  # seq ids of valid pushes answered 5xx
        self.invalid_4xx = 0
        self.invalid_accepted = 0
        self.status = {}
        # group -> the seq of its last acknowledged push
        self.last = {}

    def note(self, status):
        with self.lock:
            self.status[status] = self.status.get(status, 0) + 1


class VictoriaMetrics:
    def __init__(self, binary, data, port):
        self.binary, self.data, self.port = binary, data, port
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            [self.binary, f"-storageDataPath={self.data}",
             f"-httpListenAddr=127.0.0.1:{self.port}", "-loggerLevel=ERROR",
             "-search.disableCache", "-retentionPeriod=1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                c.request("GET", "/health")
                if c.getresponse().status == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise SystemExit("victoria-metrics did not start")

    def stop(self):
        if self.proc:
            self.proc.terminate()
            self.proc.wait()
            self.proc = None

    def pushes_delivered(self):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        c.request("GET", "/internal/force_flush")
        c.getresponse().read()
        q = urllib.parse.urlencode({"match[]": '{__name__="soak_value"}',
                                    "start": "0"})
        c.request("GET", f"/api/v1/export?{q}")
        seqs = set()
        for line in c.getresponse().read().decode().splitlines():
            if line.strip():
                seqs.add(int(json.loads(line)["metric"]["seq"]))
        return seqs


def request(port, method, path, body=b""):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request(method, path, body=body)
        r = c.getresponse()
        return r.status, r.read()
    except OSError as e:
        return None, str(e).encode()
    finally:
        c.close()


def pusher(k, port, counts, stop, next_seq):
    rng = random.Random(k)
    groups = [f"/metrics/job/soak/instance/c{k}g{g}" for g in range(GROUPS_PER_CONNECTION)]
    while not stop.is_set():
        roll = rng.random()
        if roll < 0.1:
            # Invalid: a bad value, an empty job, or a conflicting type.
            kind = rng.randrange(3)
            if kind == 0:
                status, _ = request(port, "PUT", groups[0], b"soak_value{seq=\"x\"} notanumber\n")
            elif kind == 1:
                status, _ = request(port, "PUT", "/metrics/job/", b"soak_other 1\n")
            else:
                status, _ = request(port, "PUT", f"/metrics/job/conflict/instance/c{k}",
                                    b"# TYPE soak_value counter\nsoak_value{seq=\"0\"} 1\n")
            counts.note(status)
            with counts.lock:
                if status is not None and 400 <= status < 500:
                    counts.invalid_4xx += 1
                elif status == 200:
                    counts.invalid_accepted += 1
            continue
        with counts.lock:
            seq = next_seq[0]
            next_seq[0] += 1
        group = rng.choice(groups)
        method = "PUT" if roll < 0.7 else "POST"
        body = (f"# TYPE soak_value gauge\nsoak_value{{seq=\"{seq}\"}} {seq}\n"
                f"soak_pad{{n=\"1\"}} {seq}\nsoak_pad{{n=\"2\"}} {seq}\n").encode()
        status, _ = request(port, method, group, body)
        counts.note(status)
        with counts.lock:
            if status == 200:
                counts.acked.add(seq)
                counts.last[group] = seq
            else:
                counts.refused.add(seq)
        time.sleep(0.02)


def stored_last(port):
    """group path -> the seq its soak_value holds, from /metrics."""
    status, body = request(port, "GET", "/metrics")
    assert status == 200, body
    out = {}
    for line in body.decode().splitlines():
        if line.startswith("soak_value{") and 'job="soak"' in line:
            labels = dict(p.split("=", 1) for p in line[line.index("{") + 1:line.index("}")].split(","))
            inst = labels["instance"].strip('"')
            out[f"/metrics/job/soak/instance/{inst}"] = int(labels["seq"].strip('"'))
    return out


def self_metric(port, name):
    status, body = request(port, "GET", "/metrics")
    total = 0.0
    for line in body.decode().splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--pushkit", default="target/release/pushkit")
    ap.add_argument("--vm", default=shutil.which("victoria-metrics") or "/usr/bin/victoria-metrics")
    ap.add_argument("--tmpfs-size", default="32m")
    ap.add_argument("--two-filesystems", action="store_true",
                    help="persistence_dir on a second tmpfs: the store and the sinks keep a log each")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="pushkit-soak-")
    fs = os.path.join(work, "fs")
    # The filesystems the fills take turns on; the store's is the last.
    filesystems = [fs] + ([os.path.join(work, "fs2")] if args.two_filesystems else [])
    for d in filesystems:
        os.makedirs(d)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={args.tmpfs_size}", "tmpfs", d], check=True)
    store_fs = filesystems[-1]
    vm = VictoriaMetrics(args.vm, os.path.join(work, "vm"), free_port())
    vm.start()
    port = free_port()
    conf_dir = os.path.join(work, "conf.d")
    os.makedirs(conf_dir)
    with open(os.path.join(conf_dir, "pushkit.conf"), "w") as f:
        f.write(f"""[http_api]
listen = "127.0.0.1:{port}"

[io]
flush_interval = "200ms"
queue_dir = "{fs}/queue"

[[sinks]]
name = "vm"
url = "http://127.0.0.1:{vm.port}/api/v1/write"
format = "remote-write"
retry_base = "100ms"
retry_max = "1s"

[[inputs.pushgateway]]
persistence_dir = "{store_fs}/store"
""")
    log = open(os.path.join(work, "pushkit.log"), "w")
    agent = subprocess.Popen([args.pushkit, "--conf-dir", conf_dir], stdout=subprocess.DEVNULL, stderr=log)
    for _ in range(100):
        if request(port, "GET", "/-/ready")[0] == 200:
            break
        time.sleep(0.1)
    else:
        raise SystemExit("pushkit did not become ready")

    counts = Counts()
    # The gauge type every group shares, set before a conflicting push can
    # come first.
    seed = "/metrics/job/soak/instance/seed"
    status, body = request(port, "PUT", seed, b"# TYPE soak_value gauge\nsoak_value{seq=\"0\"} 0\n")
    assert status == 200, body
    counts.acked.add(0)
    counts.last[seed] = 0
    stop = threading.Event()
    next_seq = [1]
    threads = [threading.Thread(target=pusher, args=(k, port, counts, stop, next_seq))
               for k in range(CONNECTIONS)]
    for t in threads:
        t.start()

    start = time.time()
    end = start + args.minutes * 60
    fills = 0
    ballast = os.path.join(fs, "ballast")
    rss = []
    events = []
    next_tick = start + 10
    vm_down_at, vm_up_at = start + 30, None
    fill_at, empty_at = start + 45, None
    print("| t (s) | RSS (MiB) | acknowledged | refused (5xx) | invalid (4xx) | disk free (KiB) | events |")
    print("|---|---|---|---|---|---|---|")
    while time.time() < end:
        now = time.time()
        if vm_down_at and now >= vm_down_at:
            vm.stop()
            events.append("sink down")
            vm_down_at, vm_up_at = None, now + 15
        if vm_up_at and now >= vm_up_at:
            vm.start()
            events.append("sink up")
            vm_up_at, vm_down_at = None, now + 15
        if fill_at and now >= fill_at:
            filled = filesystems[fills % len(filesystems)]
            fills += 1
            ballast = os.path.join(filled, "ballast")
            block = b"\0" * 4096
            fd = os.open(ballast, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                while True:
                    os.write(fd, block)
            except OSError:
                pass
            finally:
                os.close(fd)
            events.append("disk filled" if len(filesystems) == 1 else
                          f"{'store' if filled == store_fs else 'queue'} disk filled")
            fill_at, empty_at = None, now + 15
        if empty_at and now >= empty_at:
            os.remove(ballast)
            events.append("disk emptied")
            empty_at, fill_at = None, now + 30
        if now >= next_tick:
            kib = rss_kib(agent.pid)
            rss.append(kib)
            with counts.lock:
                acked, refused, invalid = len(counts.acked), len(counts.refused), counts.invalid_4xx
            print(f"| {now - start:.0f} | {kib / 1024:.1f} | {acked} | {refused} | {invalid} | "
                  f"{' / '.join(str(free_bytes(d) // 1024) for d in filesystems)} | "
                  f"{', '.join(events)} |", flush=True)
            events = []
            next_tick += 10
        time.sleep(0.05)

    stop.set()
    for t in threads:
        t.join()
    if os.path.exists(ballast):
        os.remove(ballast)
    if vm.proc is None:
        vm.start()
    # Drain: the queue empties once the sink has everything.
    deadline = time.time() + 120
    while time.time() < deadline and self_metric(port, "pushkit_sink_queue_points") > 0:
        time.sleep(1)
    delivered = vm.pushes_delivered()
    stored = stored_last(port)
    agent.send_signal(signal.SIGTERM)
    agent.wait()
    vm.stop()
    for d in filesystems:
        subprocess.run(["umount", d])

    lost = counts.acked - delivered
    refused_delivered = counts.refused & delivered
    refused_stored = counts.refused & set(stored.values())
    wrong_groups = {g: (stored.get(g), s) for g, s in counts.last.items() if stored.get(g) != s}
    print()
    print(f"- duration: {args.minutes:g} min; RSS first {rss[0] / 1024:.1f} MiB, "
          f"last {rss[-1] / 1024:.1f} MiB, max {max(rss) / 1024:.1f} MiB")
    print(f"- statuses: {dict(sorted((str(k), v) for k, v in counts.status.items()))}")
    print(f"- valid pushes: {len(counts.acked)} acknowledged, {len(counts.refused)} refused (5xx)")
    print(f"- invalid pushes: {counts.invalid_4xx} answered 4xx, {counts.invalid_accepted} accepted")
    print(f"- acknowledged and not delivered: {len(lost)}")
    print(f"- refused and delivered: {len(refused_delivered)}; refused and stored: {len(refused_stored)}")
    print(f"- groups whose stored push is not their last acknowledged one: {len(wrong_groups)}")
    print(f"- work dir (logs): {work}")
    ok = not lost and not refused_delivered and not refused_stored and not wrong_groups \
        and counts.invalid_accepted == 0
    print("- result:", "PASS" if ok else "FAIL")
    if wrong_groups:
        print("  ", list(wrong_groups.items())[:5])
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
