#!/usr/bin/env python3
"""Find latency on a very large index: is /tools/find flat in the size of the archive?

Creates an index with N studies (default 1,000,000: one patient per study) by writing the
SQLite index directly (the schema comes from pacsnode itself: the script starts it once on
an empty folder), then starts pacsnode on it and times /tools/find over HTTP:

  exact PatientID, exact AccessionNumber (Expand), exact StudyInstanceUID, PatientName prefix
  with Limit 100, a StudyDate range with Limit 100, and `*chest*` case-insensitive with
  Limit 100 (about one study description in four contains "chest").

Usage: scripts/find-1m.py [--studies N] [--bin target/release/pacsnode] [--dir DIR] [--keep]
Prints one line per query (p50 / p95 in ms, result counts) and the index size.
"""

import argparse
import hashlib
import http.client
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

DESCRIPTIONS = ["CT CHEST", "Chest X-ray", "MR BRAIN", "CT ABDOMEN", "US LIVER", "MR KNEE",
                "PET WHOLE BODY", "chest pa/lat"]
NAMES = ["ALPHA", "BRAVO", "CHARLIE", "DELTA", "ECHO", "FOXTROT", "GOLF", "HOTEL", "INDIA",
         "JULIETT", "KILO", "LIMA", "MIKE", "NOVEMBER", "OSCAR", "PAPA"]


def orthanc_id(s):
    h = hashlib.sha1(s.encode()).hexdigest()
    return "-".join(h[i:i + 8] for i in range(0, 40, 8))


def start(binary, config):
    p = subprocess.Popen([binary, config], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True, start_new_session=True)
    for line in p.stdout:
        if line.startswith("pacsnode ready"):
            return p
    raise SystemExit("pacsnode did not start")


def stop(p):
    p.terminate()
    p.wait(timeout=60)


def fill(db_path, n, rng):
    db = sqlite3.connect(db_path)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = OFF")
    db.execute("PRAGMA cache_size = -512000")
    next_id = (db.execute("SELECT coalesce(max(id), 0) FROM resources").fetchone()[0]) + 1
    t0 = time.time()
    batch = []
    for i in range(n):
        pid = "P%08d" % i
        name = "%s^%s%d" % (rng.choice(NAMES), rng.choice(NAMES), i % 97)
        birth = "19%02d%02d%02d" % (rng.randrange(30, 99), rng.randrange(1, 13), rng.randrange(1, 29))
        study_uid = "1.2.826.0.1.3680043.10.543.%d" % i
        date = "20%02d%02d%02d" % (rng.randrange(5, 25), rng.randrange(1, 13), rng.randrange(1, 29))
        patient = {"0010,0010": name, "0010,0020": pid, "0010,0030": birth, "0010,0040": "O"}
        study = dict(patient)
        study.update({"0008,0020": date, "0008,0030": "101010", "0008,0050": "A%08d" % i,
                      "0008,1030": rng.choice(DESCRIPTIONS), "0020,000d": study_uid,
                      "0020,0010": str(i % 1000)})
        p_row, s_row = next_id, next_id + 1
        next_id += 2
        batch.append((p_row, orthanc_id(pid), 0, None, pid, json.dumps(patient)))
        batch.append((s_row, orthanc_id(pid + "|" + study_uid), 1, p_row, study_uid, json.dumps(study)))
        if len(batch) >= 20000:
            db.executemany("INSERT INTO resources (id, public_id, level, parent_id, identifier, main_tags)"
                           " VALUES (?, ?, ?, ?, ?, ?)", batch)
            db.commit()
            batch.clear()
            done = i + 1
            if done % 100000 == 0:
                print("  %d studies (%.0f s)" % (done, time.time() - t0), flush=True)
    if batch:
        db.executemany("INSERT INTO resources (id, public_id, level, parent_id, identifier, main_tags)"
                       " VALUES (?, ?, ?, ?, ?, ?)", batch)
        db.commit()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    print("filled %d studies in %.0f s" % (n, time.time() - t0), flush=True)


def measure(port, label, make_body, rounds=40):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    times, counts = [], set()
    for r in range(rounds):
        body = json.dumps(make_body(r))
        t = time.perf_counter()
        c.request("POST", "/tools/find", body, {"Content-Type": "application/json"})
        resp = c.getresponse()
        data = resp.read()
        times.append((time.perf_counter() - t) * 1e3)
        if resp.status != 200:
            raise SystemExit("%s: HTTP %d %s" % (label, resp.status, data[:200]))
        counts.add(len(json.loads(data)))
    times.sort()
    p50, p95 = times[len(times) // 2], times[int(len(times) * 0.95) - 1]
    print("%-44s p50 %8.2f ms  p95 %8.2f ms  results %s" % (label, p50, p95, sorted(counts)[:4]), flush=True)
    return p50


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--studies", type=int, default=1_000_000)
    ap.add_argument("--bin", default=os.path.join(os.path.dirname(__file__), "..", "target", "release", "pacsnode"))
    ap.add_argument("--dir", help="work folder (default: a temporary one)")
    ap.add_argument("--port", type=int, default=18980)
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    args = ap.parse_args()
    work = args.dir or tempfile.mkdtemp(prefix="pacsnode-find-1m-")
    os.makedirs(work, exist_ok=True)
    data = os.path.join(work, "data")
    config = os.path.join(work, "config.json")
    with open(config, "w") as f:
        json.dump({"HttpPort": args.port, "DicomPort": args.port + 1, "StorageDirectory": data,
                   "IndexDirectory": data, "RemoteAccessAllowed": False}, f)
    rng = random.Random(42)
    db_path = os.path.join(data, "index.sqlite")
    have = 0
    if os.path.exists(db_path):
        have = sqlite3.connect(db_path).execute("SELECT count(*) FROM resources WHERE level = 1").fetchone()[0]
    if have != args.studies:
        shutil.rmtree(data, ignore_errors=True)
        stop(start(args.bin, config))  # creates and migrates the index
        fill(db_path, args.studies, rng)
    size = sum(os.path.getsize(os.path.join(data, f)) for f in os.listdir(data) if f.startswith("index"))
    print("index: %d studies, %.0f MB" % (args.studies, size / 1e6), flush=True)
    server = start(args.bin, config)
    try:
        n = args.studies
        pick = random.Random(7)
        measure(args.port, "exact PatientID (Study level)",
                lambda r: {"Level": "Study", "Query": {"PatientID": "P%08d" % pick.randrange(n)}})
        measure(args.port, "exact AccessionNumber, Expand",
                lambda r: {"Level": "Study", "Expand": True,
                           "Query": {"AccessionNumber": "A%08d" % pick.randrange(n)}})
        measure(args.port, "exact StudyInstanceUID",
                lambda r: {"Level": "Study",
                           "Query": {"StudyInstanceUID": "1.2.826.0.1.3680043.10.543.%d" % pick.randrange(n)}})
        measure(args.port, "PatientName prefix, Limit 100",
                lambda r: {"Level": "Study", "Limit": 100,
                           "Query": {"PatientName": pick.choice(NAMES)[:3] + "*"}})
        measure(args.port, "StudyDate range (one month), Limit 100",
                lambda r: {"Level": "Study", "Limit": 100, "Query": {"StudyDate": "20150101-20150131"}})
        measure(args.port, "*chest* case-insensitive, Limit 100",
                lambda r: {"Level": "Study", "Limit": 100, "CaseSensitive": False,
                           "Query": {"StudyDescription": "*chest*"}})
        measure(args.port, "*chest* case-insensitive, Limit 100, Expand",
                lambda r: {"Level": "Study", "Limit": 100, "CaseSensitive": False, "Expand": True,
                           "Query": {"StudyDescription": "*chest*"}})
    finally:
        stop(server)
        if not args.keep and not args.dir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
