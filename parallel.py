"""Spreading the runs of a grid over processes, GPUs and cluster nodes.

The runs are independent and each writes its own result file, so workers
need no scheduler of their own: they walk the grid in its fixed order and
claim a run by creating a lock file beside its result with ``O_EXCL``. A
worker that dies leaves a lock whose process is gone (or, on another host,
whose heartbeat has stopped); the next worker to reach that run takes it
over and resumes it from its last checkpoint.

- ``--jobs N``: N workers on this machine (this process and N - 1 started
  beside it), one per GPU when there are GPUs, each with ``--threads`` CPU
  threads otherwise.
- ``--shard I/N``: this process takes runs I, I+N, I+2N, ... of the grid, so
  a batch system can run the shards as an array job.
- ``--slurm``: the shards submitted as a SLURM job array through submitit.
"""

import multiprocessing
import os
import signal
import socket
import time
import traceback
from pathlib import Path

# a lock from another host counts as abandoned after this long without a
# heartbeat (its worker touches it after every epoch)
LOCK_TIMEOUT_SECONDS = 2 * 3600


def parse_shard(text):
    """``"I/N"`` as a pair of integers with 0 <= I < N."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like I/N, for example 0/4; "
                         f"got {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"--shard {text}: I must be between 0 and N-1")
    return index, count


def take_shard(runs, shard):
    index, count = shard
    return runs[index::count]


def split(runs, parts):
    """``parts`` interleaved shares of the runs, none empty."""
    parts = max(1, min(parts, len(runs)))
    return [take_shard(runs, (i, parts)) for i in range(parts)]


# Claiming runs.

class Lock:
    """A claim on one run, held by this process until released."""

    def __init__(self, path):
        self.path = Path(path)

    def heartbeat(self):
        self.path.touch()

    def release(self):
        self.path.unlink(missing_ok=True)


def claim(path):
    """A Lock on ``path``, or None when a live worker holds it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    owner = f"{socket.gethostname()} {os.getpid()}\n"
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            if not _take_over(path):
                return None
            continue
        with os.fdopen(fd, "w") as f:
            f.write(owner)
        return Lock(path)
    return None


def _take_over(path):
    """Move an abandoned lock out of the way; True when this process did.

    The lock is renamed, which only one process can do, and the renamed
    file is checked to still be the abandoned one: a fresh lock that
    another worker made in between is put back untouched.
    """
    seen = _abandoned(path)
    if seen is None:
        return False
    aside = path.with_name(f"{path.name}.{os.getpid()}.stale")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return True
    if aside.read_text() != seen:
        os.rename(aside, path)
        return False
    aside.unlink()
    return True


def _abandoned(path):
    """The text of the lock when its owner is gone, else None. A lock is
    abandoned when its process no longer runs on this host, when another
    host's owner stopped its heartbeat, or when it was left empty by a
    process killed while writing it."""
    try:
        text = path.read_text()
        age = time.time() - path.stat().st_mtime
    except OSError:
        return None
    try:
        host, pid = text.split()
        pid = int(pid)
    except ValueError:
        return text if age > 60 else None
    if host == socket.gethostname():
        return None if _alive(pid) else text
    return text if age > LOCK_TIMEOUT_SECONDS else None


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a finished child that nobody has waited for is not at work
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


# Workers on this machine.

def available_gpus():
    import torch
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _visible_gpus():
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES names them,
    so workers stay within a parent's own share of the machine."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed:
        return [g.strip() for g in listed.split(",") if g.strip()]
    return [str(g) for g in range(available_gpus())]


def run_workers(target, args, runs, jobs, device_type, log, dataset=None):
    """Run ``target(args, runs, worker)`` as ``jobs`` workers sharing the
    whole list through the run locks: worker 0 in this process (given the
    ``dataset`` already loaded and ``log``; on the first GPU), the others
    in processes of their own. Returns the exit code: 0, 1 when a worker
    failed (the others finish their runs), or 130 after Ctrl-C."""
    visible = _visible_gpus() if device_type == "cuda" else []
    context = multiprocessing.get_context("spawn")
    workers = []
    for worker in range(1, jobs):
        env = {}
        if visible:
            env["CUDA_VISIBLE_DEVICES"] = visible[worker % len(visible)]
        process = context.Process(target=_worker_main,
                                  args=(target, args, runs, worker, env))
        process.start()
        workers.append(process)
    where = (f"one per GPU ({len(visible)} GPUs)" if visible else
             f"{args.threads} CPU thread(s) each")
    log(f"{jobs} workers, {where}")
    failed = 0
    try:
        try:
            target(args, runs, 0, dataset,
                   lambda line: log(f"[worker 0] {line}"))
        except Exception:
            # as a worker process would: report, and let the others finish
            log("[worker 0] " + traceback.format_exc().rstrip())
            failed += 1
        for process in workers:
            process.join()
    except KeyboardInterrupt:
        log("interrupted: stopping the workers; finished runs are saved")
        _stop(workers)
        return 130
    failed += sum(w.exitcode not in (0, None) for w in workers)
    if failed:
        log(f"{failed} worker(s) ended with an error; rerun the same "
            f"command to finish their runs")
        return 1
    return 0


def _worker_main(target, args, runs, worker, env):
    os.environ.update(env)
    try:
        target(args, runs, worker)
    except KeyboardInterrupt:
        raise SystemExit(130)


def _stop(workers, grace=30):
    """Workers get Ctrl-C from the terminal too; wait for them to release
    their locks, then end those that do not stop."""
    for process in workers:
        if process.is_alive():
            os.kill(process.pid, signal.SIGINT)
    deadline = time.time() + grace
    for process in workers:
        process.join(max(0.0, deadline - time.time()))
        if process.is_alive():
            process.terminate()
            process.join()


# SLURM through submitit.

def submit_slurm(target, args, runs, out_dir, log, cluster="slurm"):
    """Submit the runs as a job array of shards; returns the jobs. Each
    task trains its runs one after another on one device.

    ``cluster="local"`` runs the same jobs as local processes (submitit's
    local executor), which is how the tests exercise this path.
    """
    import submitit

    repo = str(Path(__file__).resolve().parent)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (repo, os.environ.get("PYTHONPATH")) if p)
    folder = Path(out_dir) / "slurm" / "%j"
    executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
    parameters = dict(
        name="imbalance-cifar", timeout_min=args.time,
        gpus_per_node=args.gpus_per_task, tasks_per_node=1,
        cpus_per_task=args.cpus_per_task,
        slurm_array_parallelism=args.array_size)
    if args.partition:
        parameters["slurm_partition"] = args.partition
    executor.update_parameters(**parameters)
    shards = split(runs, args.array_size)
    with executor.batch():
        jobs = [executor.submit(target, args, shard, None)
                for shard in shards]
    ids = ", ".join(job.job_id for job in jobs)
    log(f"submitted {len(runs)} runs as {len(jobs)} tasks: {ids}")
    log(f"follow: squeue --me; logs in {folder.parent}/<job id>/")
    log(f"collect: python main.py --assemble --out-dir {out_dir}; running "
        f"the same command again submits only the runs without results")
    return jobs
