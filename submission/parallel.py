"""Run per-song (or per-file) work on ``-j N`` forked processes, and time limits that stop it.

Forked workers inherit the parent's predictor, already set up, so nothing is pickled but the song
names and the results. Each worker runs its items in its main thread, where SIGALRM time limits
work; torch gets ``cpu_count // jobs`` threads per worker.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager

_TASK: Callable | None = None


class TimeLimitExceeded(TimeoutError):
    """An item ran past its time limit and was stopped."""


@contextmanager
def time_limit(seconds: float | None, what: str = "prediction"):
    """Raise :class:`TimeLimitExceeded` after ``seconds`` of wall time (SIGALRM, like the grader).

    ``None`` or ``<= 0`` means no limit. Outside the main thread (where signals cannot be
    delivered) the block runs without a limit and a warning says so.
    """
    if not seconds or seconds <= 0 or not hasattr(signal, "setitimer"):
        yield
        return
    if threading.current_thread() is not threading.main_thread():
        warnings.warn(f"{what}: time limit not enforced outside the main thread", stacklevel=2)
        yield
        return

    def handler(signum, frame):
        raise TimeLimitExceeded(f"{what} stopped after the {seconds:g} s time limit")

    previous = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, float(seconds))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _init_worker(threads: int) -> None:
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


def _call(item):
    return _TASK(item)


def can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


def imap(task: Callable, items: Iterable, jobs: int = 1,
         on_error: Callable[[object, BaseException], object] | None = None) -> Iterator:
    """Yield ``task(item)`` for every item, on ``jobs`` forked processes (in completion order).

    Args:
        task: any callable (closures are fine: workers are forked, not spawned); it should catch
            its own errors and return a result describing them.
        items: the work items (picklable).
        jobs: number of processes; 1 runs in this process, in order.
        on_error: ``on_error(item, exc) -> result`` for a worker that died (e.g. killed for
            memory); without it the error propagates.
    """
    items = list(items)
    if jobs > 1 and not can_fork():
        warnings.warn("-j: this platform cannot fork; running one item at a time", stacklevel=2)
        jobs = 1
    if jobs <= 1 or len(items) <= 1:
        for item in items:
            yield task(item)
        return
    global _TASK
    _TASK = task
    threads = max(1, (os.cpu_count() or 1) // jobs)
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_init_worker,
                             initargs=(threads,)) as pool:
        futures = {pool.submit(_call, item): item for item in items}
        for future in as_completed(futures):
            try:
                yield future.result()
            except Exception as exc:  # noqa: BLE001 - BrokenProcessPool and friends
                if on_error is None:
                    raise
                yield on_error(futures[future], exc)
