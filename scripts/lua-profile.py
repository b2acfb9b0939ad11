#!/usr/bin/env python3
"""Which of routing's Lua scripts a running Redis spends its time in.

Usage: scripts/lua-profile.py PORT [SECONDS]

Logs every command for SECONDS (default 2) with SLOWLOG, then maps each
EVALSHA back to its script under services/routing/src/state/lua (each is
loaded as prelude.lua, a newline, then its body) and prints calls, mean and
total microseconds per script. It restores the slowlog threshold after.
Point it only at a Redis you started (a bench's or a test's), never a shared
one: logging every command costs that server time.
"""
import collections
import glob
import hashlib
import os
import subprocess
import sys
import time

port = sys.argv[1]
seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 2.0
root = os.path.join(os.path.dirname(__file__), "..", "services/routing/src/state/lua")
prelude = open(os.path.join(root, "prelude.lua")).read()
names = {}
for f in glob.glob(os.path.join(root, "*.lua")):
    body = open(f).read()
    for text in (prelude + "\n" + body, body):
        names[hashlib.sha1(text.encode()).hexdigest()] = os.path.basename(f)


def cli(*args):
    out = subprocess.run(["redis-cli", "-p", port, *args], capture_output=True)
    return out.stdout.decode("utf-8", "replace")


old = cli("config", "get", "slowlog-log-slower-than").split("\n")[1]
cli("config", "set", "slowlog-max-len", "100000")
cli("slowlog", "reset")
cli("config", "set", "slowlog-log-slower-than", "0")
time.sleep(seconds)
cli("config", "set", "slowlog-log-slower-than", old)
lines = [l.strip() for l in cli("slowlog", "get", "100000").split("\n")]
stats = collections.defaultdict(list)
for i, line in enumerate(lines):
    if line.lower() == "evalsha" and i + 1 < len(lines) and lines[i - 1].isdigit():
        stats[names.get(lines[i + 1], lines[i + 1][:12])].append(int(lines[i - 1]))
total = sum(sum(v) for v in stats.values()) or 1
print(f"{'script':<16}{'calls':>8}{'mean µs':>10}{'max µs':>9}{'share':>8}")
for name, v in sorted(stats.items(), key=lambda kv: -sum(kv[1])):
    print(f"{name:<16}{len(v):>8}{sum(v)/len(v):>10.1f}{max(v):>9}{sum(v)/total:>8.1%}")
