#!/usr/bin/env python3
"""Replays the README's sizing example at reduced scale against three
pushkit replicas behind nginx (samples/sharding/nginx/nginx.conf), and
reports each replica's throughput and the imbalance of groups: the largest
replica's share over the mean, which should be at most 1.15 at 1,000
groups. Not a CI test; a report.

    cargo build --release
    python3 scripts/shard_sim.py [--groups 1000] [--series 200]
                                 [--interval 3] [--seconds 60]

The replicas listen on fixed ports (19601-19603, nginx on 19600), so the
upstream names, and with them nginx's consistent-hash ring, are the same on
every run: the same groups land on the same replicas. The load shape is the
example's, time-compressed: every group (a pod) PUTs --series series every
--interval seconds (the example's 30 s, divided by 10 by default), the
groups staggered evenly over the interval, from 8 keep-alive connections.
It exits 1 if a push fails or the imbalance passes 1.15.
"""

import argparse
import http.client
import os
import subprocess
import sys
import tempfile
import threading
import time

REPLICA_PORTS = [19601, 19602, 19603]
NGINX_PORT = 19600
CONNECTIONS = 8


def wait_port(port, what):
    for _ in range(200):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", "/-/healthy")
            c.getresponse().read()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{what} did not come up on port {port}")


def self_metric(port, name):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/metrics")
    total = 0.0
    for line in c.getresponse().read().decode().splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--groups", type=int, default=1000)
    ap.add_argument("--series", type=int, default=200)
    ap.add_argument("--interval", type=float, default=3.0)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--pushkit", default="target/release/pushkit")
    ap.add_argument("--nginx", default="/usr/sbin/nginx")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="pushkit-shard-sim-")
    procs = []
    try:
        for i, port in enumerate(REPLICA_PORTS):
            conf = os.path.join(work, f"replica-{i}")
            os.makedirs(conf)
            with open(os.path.join(conf, "pushkit.conf"), "w") as f:
                f.write(f'[http_api]\nlisten = "127.0.0.1:{port}"\n\n[[inputs.pushgateway]]\n')
            log = open(os.path.join(work, f"replica-{i}.log"), "w")
            procs.append(subprocess.Popen([args.pushkit, "--conf-dir", conf],
                                          stdout=subprocess.DEVNULL, stderr=log))
            wait_port(port, f"replica {i}")
        here = os.path.dirname(os.path.abspath(__file__))
        with open(os.path.join(here, "..", "samples", "sharding", "nginx", "nginx.conf")) as f:
            conf = f.read()
        conf = conf.replace("listen 9529;", f"listen 127.0.0.1:{NGINX_PORT};")
        for i, port in enumerate(REPLICA_PORTS):
            conf = conf.replace(f"server pushkit-{i}:9529 ", f"server 127.0.0.1:{port} ")
        conf = conf.replace("http {", (
            f"pid {work}/nginx.pid;\nerror_log {work}/nginx-error.log;\nhttp {{\n"
            f"    access_log off;\n    client_body_temp_path {work}/body;\n"
            f"    proxy_temp_path {work}/proxy;\n    fastcgi_temp_path {work}/fastcgi;\n"
            f"    uwsgi_temp_path {work}/uwsgi;\n    scgi_temp_path {work}/scgi;"))
        nginx_conf = os.path.join(work, "nginx.conf")
        with open(nginx_conf, "w") as f:
            f.write(conf)
        procs.append(subprocess.Popen([args.nginx, "-p", work, "-c", nginx_conf, "-g", "daemon off;"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for _ in range(100):
            try:
                http.client.HTTPConnection("127.0.0.1", NGINX_PORT, timeout=1).connect()
                break
            except OSError:
                time.sleep(0.05)

        body = "".join(f'sim_value{{series="{s}"}} {s}\n' for s in range(args.series)).encode()
        errors = []
        pushes = [0]
        lock = threading.Lock()
        start = time.time() + 0.5
        end = start + args.seconds

        def worker(w):
            conn = http.client.HTTPConnection("127.0.0.1", NGINX_PORT, timeout=30)
            mine = range(w, args.groups, CONNECTIONS)
            # Group k pushes at start + k/groups*interval + n*interval.
            n = 0
            while True:
                for k in mine:
                    at = start + (k / args.groups + n) * args.interval
                    if at >= end:
                        conn.close()
                        return
                    delay = at - time.time()
                    if delay > 0:
                        time.sleep(delay)
                    try:
                        conn.request("PUT", f"/metrics/job/sim/instance/pod-{k}", body=body)
                        r = conn.getresponse()
                        r.read()
                        ok = r.status == 200
                    except OSError as e:
                        ok = False
                        conn.close()
                        conn = http.client.HTTPConnection("127.0.0.1", NGINX_PORT, timeout=30)
                        r = e
                    with lock:
                        pushes[0] += 1
                        if not ok:
                            errors.append(str(getattr(r, "status", r)))
                n += 1

        threads = [threading.Thread(target=worker, args=(w,)) for w in range(CONNECTIONS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = args.seconds

        groups = [self_metric(p, "pushkit_store_groups") for p in REPLICA_PORTS]
        received = [self_metric(p, "pushkit_pushes_total") for p in REPLICA_PORTS]
        mean = sum(groups) / len(groups)
        imbalance = max(groups) / mean if mean else float("inf")
        print(f"{args.groups} groups x {args.series} series every {args.interval:g} s, "
              f"{args.seconds:g} s through nginx ({CONNECTIONS} connections)")
        print()
        print("| replica | groups | share | pushes | pushes/s |")
        print("|---|---|---|---|---|")
        for i in range(len(REPLICA_PORTS)):
            print(f"| {i} | {groups[i]:.0f} | {groups[i] / sum(groups):.1%} | {received[i]:.0f} | "
                  f"{received[i] / elapsed:.1f} |")
        print()
        print(f"- pushes sent: {pushes[0]} ({pushes[0] / elapsed:.1f}/s), failed: {len(errors)}")
        print(f"- imbalance (largest replica's groups over the mean): {imbalance:.3f}")
        ok = not errors and imbalance <= 1.15
        print("- result:", "PASS" if ok else "FAIL")
        sys.exit(0 if ok else 1)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()


if __name__ == "__main__":
    main()
