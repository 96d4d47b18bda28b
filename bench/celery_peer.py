"""The Celery side of `cloudphone-bench`: N durable no-op tasks through a Redis broker.

Run by the benchmark (which starts a private redis-server first):

    bench/.venv/bin/python bench/celery_peer.py --redis redis://127.0.0.1:PORT --tasks 10000

It starts a Celery worker (prefork, --concurrency processes, acks_late so that a task is
acknowledged only once it ran, as durable as cloudphone's tasks), waits until the worker runs a
first task, then submits N no-op tasks as fast as one client can and waits for every result.
The time from the first submit to the last result is printed as the last line:
{"tasks": N, "seconds": S}.
"""

import argparse
import json
import os
import subprocess
import sys
import time

from celery import Celery
from celery.result import ResultSet

REDIS = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379")

app = Celery("celery_peer", broker=REDIS + "/0", backend=REDIS + "/1")
app.conf.update(
    task_acks_late=True,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="noop")
def noop(i):
    return i


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis", required=True)
    parser.add_argument("--tasks", type=int, default=10000)
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()

    env = dict(os.environ, BENCH_REDIS=args.redis)
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "celery_peer", "worker",
         "--pool", "prefork", "--concurrency", str(args.concurrency),
         "--without-gossip", "--without-mingle", "--without-heartbeat",
         "--loglevel", "WARNING"],
        env=env,
        cwd=os.path.dirname(os.path.abspath(__file__)),
        stdout=subprocess.DEVNULL,
    )
    try:
        app.conf.update(broker_url=args.redis + "/0", result_backend=args.redis + "/1")
        # The worker is up once it ran a first task.
        noop.apply_async(args=(-1,)).get(timeout=120)

        started = time.perf_counter()
        results = [noop.apply_async(args=(i,)) for i in range(args.tasks)]
        values = ResultSet(results).get(timeout=1800)
        seconds = time.perf_counter() - started
        if sorted(values) != list(range(args.tasks)):
            raise SystemExit("the Celery peer lost or duplicated results")
        print(json.dumps({"tasks": args.tasks, "seconds": seconds}), flush=True)
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


if __name__ == "__main__":
    main()
