"""Two tuning workers (two processes) share one Optuna study on a real PostgreSQL server.

The server is started on loopback in a temporary folder (initdb + pg_ctl from the Debian
``postgresql`` package, run as the ``postgres`` user when the tests run as root) and stopped in
teardown. Skipped, saying why, when the PostgreSQL binaries are not installed.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from test_blend_tune import tiny_checkpoints, write_tiny_dataset

from blend.optuna_storage import storage_url

ROOT = Path(__file__).resolve().parents[1]


def postgres_bindir() -> Path | None:
    """Folder holding initdb and pg_ctl: the newest /usr/lib/postgresql/*/bin, else the PATH."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: float(Path(p).parent.name))
    for folder in reversed(candidates):
        if (Path(folder) / "initdb").is_file() and (Path(folder) / "pg_ctl").is_file():
            return Path(folder)
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb and shutil.which("pg_ctl") else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    bindir = postgres_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not found; install the Debian package 'postgresql'")
    folder = Path(tempfile.mkdtemp(prefix="stemblend-pg-"))
    run_as = []
    if os.geteuid() == 0:  # the server refuses to run as root
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(folder)
            pytest.skip("running as root and there is no 'postgres' user to run the server as")
        os.chown(folder, user.pw_uid, user.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", free_port()
    ctl = run_as + [str(bindir / "pg_ctl"), "-D", str(data)]
    try:
        subprocess.run(run_as + [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                                 "--no-sync", "-E", "UTF8"], check=True, capture_output=True, timeout=120)
        subprocess.run(ctl + ["-l", str(folder / "server.log"), "-w", "-t", "60", "-o",
                              f"-p {port} -h 127.0.0.1 -k {folder} -F", "start"],
                       check=True, capture_output=True, timeout=90)
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(ctl + ["-m", "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


def test_two_workers_share_one_study(tmp_path, postgres_url):
    import optuna

    data = write_tiny_dataset(tmp_path / "songs", seconds=1.0)
    args = [sys.executable, "-m", "blend.tune", "--data-dir", str(data), "--storage", postgres_url,
            "--study-name", "two-workers", "--n-trials", "3", "--cache-dir", str(tmp_path / "cache"),
            "--grid-step", "0.5", "--wiener-win-len", "32", "-q"]
    for member in tiny_checkpoints(tmp_path):
        args += ["--member", member]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    workers = [subprocess.Popen(args + ["-o", str(tmp_path / f"worker{i}")], cwd=ROOT, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for i in range(2)]
    try:
        outputs = [w.communicate(timeout=300)[0] for w in workers]
    finally:
        for w in workers:
            w.kill()
    for w, out in zip(workers, outputs):
        assert w.returncode == 0, out[-3000:]
    study = optuna.load_study(study_name="two-workers", storage=storage_url(postgres_url))
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    by_worker = {}
    for t in done:
        by_worker.setdefault(t.user_attrs["worker"], []).append(t.number)
    assert len(done) == 6 and len(by_worker) == 2, by_worker
    assert all(len(numbers) == 3 for numbers in by_worker.values())
    assert len({tuple(sorted(t.params.items())) for t in done}) >= 5  # the grid sampler spreads them
    for i in range(2):
        assert (tmp_path / f"worker{i}" / "ensemble.yaml").is_file()
