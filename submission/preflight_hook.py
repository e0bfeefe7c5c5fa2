"""Runs inside the subprocess of ``python -m submission check``: the submission, watched.

This file is executed by path (``python <kit>/submission/preflight_hook.py --log LOG --mode M``) with
the submission's folder as working directory, so it imports nothing from the kit: only the
standard library (and numpy/soundfile in the 2023 mode, which the 2023 wrapper uses too). It

* puts the working directory first on ``sys.path``, exactly as ``python predict.py`` would;
* blocks network access from Python (connections to anything but the loopback fail like on an
  offline machine) and logs every attempt with the file and line that made it;
* ``--mode mdx21``: wraps ``prediction_setup`` and ``prediction`` of every
  ``evaluator.music_demixing.MusicDemixingPredictor`` instance to time them, then runs
  ``predict.py`` as ``__main__`` (the grader's ``python predict.py``);
* ``--mode sdx23``: does what the 2023 wrapper does: ``MySeparationModel()`` from
  ``my_submission/user_config.py``, then ``separate_music_file(soundfile.read(mixture))`` per song
  under the per-song limit, each stem written with ``soundfile.write``;
* ``--mode sdx23-probe``: instantiates ``MySeparationModel`` and separates a short stereo array.

Every event goes to the log as one JSON line: ``start``, ``init`` (the predictor was created),
``setup``, ``song``, ``network``, ``probe``, ``end``.
"""

import argparse
import errno
import json
import os
import signal
import socket
import sys
import time
import traceback

LOG = None
T0 = time.perf_counter()
INSTRUMENTS = ["bass", "drums", "other", "vocals"]
#: the loopback port the fallback isolation points the proxy variables at (nothing listens there)
DEAD_PROXY_PORT = 9


def log(event, **fields):
    """Append one JSON line to the log (one write, so forked workers do not interleave)."""
    fields.update(event=event, t=round(time.perf_counter() - T0, 4))
    line = (json.dumps(fields, default=str) + "\n").encode()
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def _error_text(exc):
    return f"{type(exc).__name__}: {exc}"


# -- network ---------------------------------------------------------------------------------
_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "", None}


def _is_local(host):
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    return host in _LOCAL_NAMES or str(host).startswith("127.") or host in ("::1", "0.0.0.0")


def _caller():
    """Innermost frame in the submission's folder (else the innermost outside this file)."""
    cwd = os.getcwd()
    frames = [(os.path.abspath(f.filename), f.lineno) for f in traceback.extract_stack()[:-2]]
    frames = [f for f in frames if f[0] != os.path.abspath(__file__)]
    mine = [f for f in frames if f[0].startswith(cwd + os.sep)]
    filename, lineno = (mine or frames or [("?", 0)])[-1]
    return f"{os.path.relpath(filename, cwd) if mine else filename}:{lineno}"


def block_network():
    """Make every non-loopback connection and name lookup fail, logging who tried."""
    real_connect, real_connect_ex, real_getaddrinfo = (socket.socket.connect, socket.socket.connect_ex,
                                                       socket.getaddrinfo)

    def refuse(address):
        if not _is_local(address.split(":")[0]):
            log("network", address=address, where=_caller())
        return OSError(errno.ENETUNREACH, "Network is unreachable (blocked by the pre-flight check: "
                                          "the grader has no internet access)")

    def allowed(sock, address):
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return True
        if _is_local(address[0]) and address[1] == DEAD_PROXY_PORT:  # a download via the proxy variables
            log("network", address=f"a proxy ({address[0]}:{address[1]}, from HTTP(S)_PROXY)",
                where=_caller())
            return False
        return _is_local(address[0])

    def connect(self, address):
        if not allowed(self, address):
            raise refuse(f"{address[0]}:{address[1]}")
        return real_connect(self, address)

    def connect_ex(self, address):
        if not allowed(self, address):
            refuse(f"{address[0]}:{address[1]}")
            return errno.ENETUNREACH
        return real_connect_ex(self, address)

    def getaddrinfo(host, port, *args, **kwargs):
        if not _is_local(host):
            log("network", address=f"{host}:{port}", where=_caller())
            raise socket.gaierror(socket.EAI_NONAME, f"name lookup of {host} blocked (the grader is offline)")
        return real_getaddrinfo(host, port, *args, **kwargs)

    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    socket.getaddrinfo = getaddrinfo


# -- timing the 2021 predictor ---------------------------------------------------------------------
def _timed(name, method):
    """Log each ``prediction`` call as a ``song``; only the first ``prediction_setup`` call as ``setup``
    (later calls, e.g. from inside ``prediction``, count in that song's time)."""
    calls = []

    def wrapper(*args, **kwargs):
        calls.append(name)
        if name == "prediction_setup" and len(calls) > 1:
            return method(*args, **kwargs)
        start = time.perf_counter()
        error = None
        try:
            return method(*args, **kwargs)
        except BaseException as exc:
            error = _error_text(exc)
            raise
        finally:
            seconds = time.perf_counter() - start
            if name == "prediction":
                mixture = kwargs.get("mixture_file_path", args[0] if args else "")
                song = os.path.basename(os.path.dirname(os.path.abspath(str(mixture))))
                log("song", song=song, seconds=seconds, error=error)
            else:
                log("setup", seconds=seconds, error=error)

    wrapper.__wrapped__ = method
    return wrapper


def _watch(instance):
    if instance.__dict__.get("_preflight_watched"):
        return
    instance._preflight_watched = True
    log("init", cls=f"{type(instance).__module__}.{type(instance).__qualname__}")
    for name in ("prediction_setup", "prediction"):
        setattr(instance, name, _timed(name, getattr(instance, name)))


def patch_mdx21():
    """Time ``prediction_setup``/``prediction`` of every ``MusicDemixingPredictor`` instance."""
    from evaluator.music_demixing import MusicDemixingPredictor as base

    original_init = base.__init__

    def __init__(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        _watch(self)

    for method in ("run", "evaluation"):  # a subclass whose __init__ skips the base one
        original = getattr(base, method, None)
        if original is not None:
            def watched(self, *args, _original=original, **kwargs):
                _watch(self)
                return _original(self, *args, **kwargs)

            setattr(base, method, watched)
    base.__init__ = __init__


def run_mdx21():
    import runpy

    patch_mdx21()
    sys.argv = ["predict.py"]
    runpy.run_path("predict.py", run_name="__main__")


# -- the 2023 wrapper ------------------------------------------------------------------------------
class _Timeout(Exception):
    pass


def _alarm(seconds):
    def handler(signum, frame):
        raise _Timeout(f"stopped after the {seconds:g} s time limit")

    signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, max(float(seconds), 0.001))


def _make_model(setup_limit):
    from my_submission.user_config import MySeparationModel

    log("init", cls=f"{MySeparationModel.__module__}.{getattr(MySeparationModel, '__qualname__', '?')}")
    start, error = time.perf_counter(), None
    try:
        _alarm(setup_limit)
        return MySeparationModel()
    except BaseException as exc:
        error = _error_text(exc)
        raise
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        log("setup", seconds=time.perf_counter() - start, error=error)


def run_sdx23(limits):
    import soundfile as sf

    test_dir = os.getenv("TEST_DATASET_PATH", "data/test")
    results_dir = os.getenv("RESULTS_DATASET_PATH", "data/results")
    model = _make_model(float(os.getenv("INFERENCE_SETUP_TIMEOUT_SECONDS", "900")))
    default_limit = float(os.getenv("INFERENCE_PER_MUSIC_TIMEOUT_SECONDS", "240"))
    partial = os.getenv("PARTIAL_RUN_MUSIC_NAMES")
    songs = sorted(d for d in os.listdir(test_dir) if os.path.isdir(os.path.join(test_dir, d)))
    if partial:
        songs = [s for s in songs if s in {n.strip() for n in partial.split(",")}]
    failed = 0
    for song in songs:
        start, error = time.perf_counter(), None
        try:
            mixture, rate = sf.read(os.path.join(test_dir, song, "mixture.wav"))
            _alarm(limits.get(song, default_limit))
            try:
                arrays, rates = model.separate_music_file(mixture, rate)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            os.makedirs(os.path.join(results_dir, song), exist_ok=True)
            for instrument in model.instruments:
                sf.write(os.path.join(results_dir, song, instrument + ".wav"), arrays[instrument],
                         rates[instrument])
        except Exception as exc:  # noqa: BLE001 - logged; the other songs still run
            error = _error_text(exc)
            failed += 1
            traceback.print_exc()
        log("song", song=song, seconds=time.perf_counter() - start, error=error)
    if failed:
        raise SystemExit(f"{failed} song(s) failed")


def probe_sdx23(seconds=1.0, rate=44100):
    """``separate_music_file`` on ``(n_samples, 2)`` noise: log what comes back."""
    import numpy as np

    model = _make_model(float(os.getenv("INFERENCE_SETUP_TIMEOUT_SECONDS", "900")))
    mixture = (0.1 * np.random.default_rng(0).standard_normal((int(seconds * rate), 2))).astype(np.float32)
    instruments = list(getattr(model, "instruments", []))
    arrays, rates = model.separate_music_file(mixture, rate)
    shapes = {k: list(np.shape(v)) for k, v in dict(arrays).items()}
    finite = {k: bool(np.all(np.isfinite(np.asarray(v, dtype=np.float64)))) for k, v in dict(arrays).items()}
    log("probe", instruments=instruments, input_shape=list(mixture.shape), rate=rate, shapes=shapes,
        rates={k: v for k, v in dict(rates).items()}, finite=finite)


def main():
    global LOG
    parser = argparse.ArgumentParser()
    parser.add_argument("--log", required=True)
    parser.add_argument("--mode", choices=("mdx21", "sdx23", "sdx23-probe"), default="mdx21")
    parser.add_argument("--limits", default=None, help="JSON file {song: seconds} (per-song limits)")
    args = parser.parse_args()
    LOG = args.log
    sys.path[0] = os.getcwd()  # as `python predict.py` from the submission's folder
    block_network()
    log("start", python=sys.version.split()[0])
    limits = {}
    if args.limits:
        with open(args.limits) as stream:
            limits = json.load(stream)
    try:
        if args.mode == "mdx21":
            run_mdx21()
        elif args.mode == "sdx23":
            run_sdx23(limits)
        else:
            probe_sdx23()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) or exc.code is None else 1
        log("end", code=code or 0, error=None if not code else str(exc.code))
        raise
    except BaseException as exc:
        log("end", code=1, error=_error_text(exc), traceback=traceback.format_exc()[-4000:])
        raise
    log("end", code=0, error=None)


if __name__ == "__main__":
    main()
