"""Workers on one machine, shards, run locks and the submitit path."""

import multiprocessing
import os
import signal
import time

import pandas as pd
import pytest

import distributions
import main
import parallel
from test_main import read_tables, run_cli, tiny_args


def parallel_args(image_folder, out_dir, *extra):
    """tiny_args with the last --jobs given winning."""
    return (*tiny_args(image_folder, out_dir), "--threads", 1, *extra)


def grid_of(out_dir):
    runs, per_class = read_tables(out_dir)
    return runs, per_class.sort_values(
        ["distribution", "seed", "class_index"]).reset_index(drop=True)


def test_two_jobs_give_the_same_results_as_one(image_folder, tiny_suites,
                                               tmp_path):
    for jobs in (1, 2):
        assert run_cli(*parallel_args(image_folder, tmp_path / f"j{jobs}",
                                      "--seeds", 0, 1, "--jobs", jobs)) == 0
    one, two = grid_of(tmp_path / "j1")[1], grid_of(tmp_path / "j2")[1]
    assert len(one) == len(two) == 40
    assert one["correct"].tolist() == two["correct"].tolist()
    runs = pd.read_csv(tmp_path / "j2" / "runs.csv")
    assert set(runs["threads"]) == {1}


def test_a_failing_worker_leaves_the_others_running(image_folder,
                                                    tiny_suites, tmp_path,
                                                    monkeypatch, capsys):
    # worker 0 runs in this process, where every run fails; the spawned
    # worker imports the real code and trains whatever it can claim
    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")
    monkeypatch.setattr(main, "train_run", broken)
    out = tmp_path / "out"
    code = run_cli(*parallel_args(image_folder, out, "--seeds", 0, 1,
                                  "--jobs", 2))
    log = capsys.readouterr().out
    assert code == 1
    assert "[worker 0] Traceback" in log and "out of memory" in log
    assert "1 worker(s) ended with an error" in log
    assert len(list(out.rglob("*.json"))) >= 3
    assert not list(out.rglob("*.lock"))


def _shard_process(suites, argv):
    """A separate process running the command, as a batch system would."""
    distributions.SUITES = suites
    raise SystemExit(main.main(argv))


def _start(argv, suites):
    context = multiprocessing.get_context("spawn")
    process = context.Process(target=_shard_process,
                              args=(suites, [str(a) for a in argv]))
    process.start()
    return process


def test_two_shards_at_once_fill_the_grid_exactly(image_folder, tiny_suites,
                                                  tmp_path):
    out = tmp_path / "out"
    args = parallel_args(image_folder, out, "--seeds", 0, 1, 2)
    shards = [_start([*args, "--shard", f"{i}/2"], tiny_suites)
              for i in range(2)]
    for process in shards:
        process.join(300)
        assert process.exitcode == 0
    main.assemble_tables(out)
    runs, per_class = grid_of(out)
    keys = list(zip(runs["distribution"], runs["seed"]))
    assert sorted(keys) == sorted((d, s) for d in ("balanced", "one-rare")
                                  for s in (0, 1, 2))
    assert len(per_class) == 6 * 10
    assert not list(out.rglob("*.lock"))


def test_a_killed_shard_is_completed_by_rerunning_it(image_folder,
                                                     tiny_suites, tmp_path):
    out = tmp_path / "out"
    args = [*parallel_args(image_folder, out, "--seeds", 0, 1, "--epochs",
                           40), "--shard", "0/1"]
    process = _start(args, tiny_suites)
    deadline = time.time() + 240
    while not list(out.rglob("*.pt")) and time.time() < deadline:
        time.sleep(0.2)
    process.kill()
    process.join()
    assert list(out.rglob("*.lock")), "the killed worker left its lock"

    assert run_cli(*args) == 0
    runs, per_class = grid_of(out)
    assert len(runs) == 4 and len(per_class) == 40
    assert not list(out.rglob("*.lock")) and not list(out.rglob("*.pt"))


def _terminal_process(suites, argv):
    """The command in a process group of its own, as a shell starts it, so
    that Ctrl-C can reach it and its workers together."""
    os.setpgrp()
    _shard_process(suites, argv)


def test_ctrl_c_stops_every_worker_and_the_rerun_finishes(image_folder,
                                                         tiny_suites,
                                                         tmp_path):
    out = tmp_path / "out"
    args = parallel_args(image_folder, out, "--seeds", 0, 1, "--epochs", 40,
                         "--jobs", 2)
    context = multiprocessing.get_context("spawn")
    process = context.Process(target=_terminal_process,
                              args=(tiny_suites, [str(a) for a in args]))
    process.start()
    deadline = time.time() + 240
    def both_training():
        return (len(list(out.rglob("*.pt"))) == 2
                and len(list(out.rglob("*.lock"))) == 2)
    while not both_training() and time.time() < deadline:
        time.sleep(0.1)
    assert both_training()
    os.killpg(process.pid, signal.SIGINT)
    process.join(60)
    assert process.exitcode == 130
    assert not list(out.rglob("*.lock"))
    assert len(list(out.rglob("*.pt"))) == 2, "checkpoints kept to resume"

    assert run_cli(*args) == 0
    runs, per_class = grid_of(out)
    assert len(runs) == 4 and len(per_class) == 40
    assert not list(out.rglob("*.pt"))


def test_a_run_held_by_a_live_worker_is_left_alone(image_folder, tiny_suites,
                                                   tmp_path, capsys):
    out = tmp_path / "out"
    run = main.plan_runs(main.parse_args(list(map(str, parallel_args(
        image_folder, out)))), distributions.select(["tiny"]))[0]
    lock = parallel.claim(run.result_path(out).with_suffix(".lock"))
    assert lock is not None
    assert parallel.claim(lock.path) is None

    assert run_cli(*parallel_args(image_folder, out)) == 0
    assert "1 held by other workers" in capsys.readouterr().out
    assert not run.result_path(out).exists()
    lock.release()
    assert run_cli(*parallel_args(image_folder, out)) == 0
    assert run.result_path(out).exists()


def test_a_lock_of_a_dead_process_is_taken_over(tmp_path):
    path = tmp_path / "run.lock"
    path.write_text(f"{os.uname().nodename} 999999999\n")
    lock = parallel.claim(path)
    assert lock is not None and str(os.getpid()) in path.read_text()


def test_an_empty_lock_left_by_a_killed_writer_is_taken_over(tmp_path):
    path = tmp_path / "run.lock"
    path.write_text("")
    assert parallel.claim(path) is None          # may still be written
    old = time.time() - 120
    os.utime(path, (old, old))
    assert parallel.claim(path) is not None


def test_workers_stay_on_the_parents_gpus(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5")
    assert parallel._visible_gpus() == ["4", "5"]


def test_shards_partition_the_grid():
    runs = list(range(10))
    parts = [parallel.take_shard(runs, (i, 3)) for i in range(3)]
    assert sorted(sum(parts, [])) == runs
    assert parts[0] == [0, 3, 6, 9]
    assert parallel.split(runs, 20) == [[r] for r in runs]


@pytest.mark.parametrize("extra,message", [
    (("--shard", "2/2"), "I must be between 0 and N-1"),
    (("--shard", "half"), "--shard must look like I/N"),
    (("--jobs", 0), "--jobs must be a positive number or auto"),
    (("--threads", 0), "--threads must be at least 1"),
])
def test_bad_parallel_flags_are_named(image_folder, tiny_suites, tmp_path,
                                      capsys, extra, message):
    assert run_cli(*parallel_args(image_folder, tmp_path / "o"), *extra) == 2
    assert message in capsys.readouterr().err


def test_submitit_runs_the_grid_as_an_array(image_folder, tiny_suites,
                                            tmp_path):
    out = tmp_path / "out"
    args = main.parse_args(list(map(str, parallel_args(
        image_folder, out, "--seeds", 0, 1, "--array-size", 3))))
    args.force_before = None
    runs = main.plan_runs(args, distributions.select(["tiny"]))
    jobs = parallel.submit_slurm(main.execute, args, runs, out, print,
                                 cluster="local")
    assert len(jobs) == 3
    assert [job.result() for job in jobs] == [0, 0, 0]
    main.assemble_tables(out)
    runs_table, per_class = grid_of(out)
    assert len(runs_table) == 4 and len(per_class) == 40
    assert (out / "slurm").is_dir()
