"""``python -m submission check``: run the submission the way the grader does, before uploading it.

It runs ``python predict.py`` (``--format sdx23``: the 2023 wrapper around
``my_submission/user_config.py``) in a fresh subprocess, from the submission's folder, with the
grader's environment variables (``TEST_DATASET_PATH``, ``RESULTS_DATASET_PATH`` in a temporary
folder, ``INFERENCE_SETUP_TIMEOUT_SECONDS``, ``INFERENCE_PER_MUSIC_TIMEOUT_SECONDS``), without
``PYTHONPATH`` and without network access: in a new network namespace (``unshare -n``) when the
machine allows it, and always through a Python socket guard plus proxy variables pointing at an
unreachable loopback port. Then it reports:

* ``aicrowd.json`` keys and types; every weight file of every manifest (exists, not a git-lfs
  pointer, sha256 and size);
* whether the predictor was created offline, the setup time against its limit, and every
  blocked network attempt;
* per song: time used against its limit (240 s, or ``--time-limit-factor`` x the song's duration)
  and the margin (a warning under 20%: "randomly fails near the limit");
* per song: every stem exists with the mixture's frames, channels and rate, with no NaN/Inf;
  clipped samples (``|x| >= 1``) are counted.

The exit code is 0 only when every check passes (warnings do not fail). ``--json`` prints one JSON
object instead of the table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf

from core.constants import TARGETS
from submission.checks_run import (
    Song,
    check_song_outputs,
    judge_network,
    judge_setup,
    judge_song,
    read_events,
)
from submission.checks_static import Check, check_aicrowd_json, check_weights

HOOK = Path(__file__).resolve().parent / "preflight_hook.py"
#: the 2023 rule: a song may take 1.57 x its duration
SDX23_FACTOR = 1.57
#: the proxy address of the fallback isolation (the discard port on the loopback: nothing listens)
DEAD_PROXY = "http://127.0.0.1:9"
#: seconds added to the sum of the limits before the whole run is killed
GRACE = 120.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo", type=Path, default=Path("."),
                        help="the submission's folder, holding predict.py and aicrowd.json (default: .)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="folder of <song>/mixture.wav folders (default: REPO/data/test, rendered "
                             "as the demo set when empty)")
    limit = parser.add_mutually_exclusive_group()
    limit.add_argument("--time-limit", type=float, default=None, metavar="SECONDS",
                       help="per-song limit (default 240 s, the MDX 2021 round 1 rule)")
    limit.add_argument("--time-limit-factor", type=float, default=None, metavar="FACTOR",
                       help="per-song limit = FACTOR x the song's duration (1.57: MDX 2021 round 2 "
                            "and SDX 2023; the default with --format sdx23)")
    parser.add_argument("--setup-timeout", type=float, default=900.0, metavar="SECONDS",
                        help="limit of prediction_setup() (default 900 s)")
    parser.add_argument("--format", choices=("mdx21", "sdx23"), default="mdx21",
                        help="mdx21: run predict.py (2021 layout); sdx23: run my_submission/user_config.py "
                             "as the 2023 wrapper does (default: mdx21)")
    parser.add_argument("--results-dir", type=Path, default=None,
                        help="keep the outputs here (default: a temporary folder, removed afterwards)")
    parser.add_argument("--no-namespace", action="store_true",
                        help="do not use a network namespace (the Python guard and proxies still apply)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines while it runs")


# -- preparation -------------------------------------------------------------------------------
def resolve_data_dir(repo: Path, data_dir: Path | None, quiet: bool) -> Path:
    """``--data-dir``, or ``repo/data/test`` (rendering the demo set there when it is empty)."""
    from submission.datasets import ensure_demo_test_set, has_song_folders

    if data_dir is not None:
        if not has_song_folders(data_dir):
            raise FileNotFoundError(f"{data_dir}: no <song>/mixture.wav folders (--data-dir)")
        return data_dir.resolve()
    with contextlib.redirect_stdout(sys.stderr):  # keep stdout for the report (--json)
        return ensure_demo_test_set(repo / "data", progress=not quiet).resolve()


def list_songs(data_dir: Path, time_limit: float | None, factor: float | None) -> list[Song]:
    """The songs of ``data_dir`` (sorted) with their mixture header and per-song limit."""
    songs = []
    for folder in sorted(p for p in data_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        mixture = folder / "mixture.wav"
        info = sf.info(str(mixture))
        duration = info.frames / info.samplerate
        limit = factor * duration if factor is not None else (time_limit or 240.0)
        songs.append(Song(folder.name, mixture, info.frames, info.channels, info.samplerate, limit))
    return songs


_NAMESPACE_OK: bool | None = None


def namespace_available() -> bool:
    """Whether ``unshare -n`` works here (root, or user namespaces allowed); tested once."""
    global _NAMESPACE_OK
    if _NAMESPACE_OK is None:
        try:
            _NAMESPACE_OK = shutil.which("unshare") is not None and subprocess.run(
                ["unshare", "-n", "true"], capture_output=True, timeout=10).returncode == 0
        except (OSError, subprocess.SubprocessError):
            _NAMESPACE_OK = False
    return _NAMESPACE_OK


def isolation(command: list[str], use_namespace: bool = True) -> tuple[list[str], str, bool]:
    """Wrap ``command`` to run without network.

    Returns:
        ``(command, description, namespace)``: in a new network namespace when possible (only a
        loopback inside), else as is; the Python socket guard of the hook applies in both cases, the
        dead proxy variables only without a namespace.
    """
    if use_namespace and namespace_available():
        script = 'ip link set lo up 2>/dev/null; exec "$@"'
        wrapped = ["unshare", "-n", "sh", "-c", script, "sh", *command]
        return wrapped, "network namespace (unshare -n) + Python socket guard", True
    return command, (f"Python socket guard + proxy variables pointing at {DEAD_PROXY} "
                     "(no network namespace available here)"), False


def grader_env(data_dir: Path, results_dir: Path, setup_timeout: float, song_timeout: float,
               proxies: bool = True) -> dict:
    """The child's environment: the grader's variables, no PYTHONPATH, and (``proxies``) the proxy
    variables pointing at a dead loopback port (for tools other than Python outside a namespace)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PARTIAL_RUN_MUSIC_NAMES")}
    env.update({
        "TEST_DATASET_PATH": str(data_dir) + os.sep,
        "RESULTS_DATASET_PATH": str(results_dir) + os.sep,
        "INFERENCE_SETUP_TIMEOUT_SECONDS": str(math.ceil(setup_timeout)),
        "INFERENCE_PER_MUSIC_TIMEOUT_SECONDS": str(max(1, math.ceil(song_timeout))),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
    })
    for name in ("http_proxy", "https_proxy", "all_proxy", "ftp_proxy", "no_proxy"):
        env.pop(name, None)
        env.pop(name.upper(), None)
        if proxies and name != "no_proxy":
            env[name] = env[name.upper()] = DEAD_PROXY
    return env


# -- the run ------------------------------------------------------------------------------------
def run_submission(repo: Path, songs: list[Song], data_dir: Path, results_dir: Path, work: Path,
                   setup_timeout: float, layout: str, use_namespace: bool, quiet: bool) -> dict:
    """Run the submission once, in a subprocess, under the limits; returns what happened.

    Returns:
        ``{"code", "timed_out", "seconds", "events", "output_tail", "network"}``.
    """
    log = work / "events.jsonl"
    limits = work / "limits.json"
    limits.write_text(json.dumps({s.name: s.limit for s in songs}))
    mode = "mdx21" if layout == "mdx21" else "sdx23"
    command, network, namespace = isolation([sys.executable, str(HOOK), "--log", str(log), "--mode", mode,
                                             "--limits", str(limits)], use_namespace)
    env = grader_env(data_dir, results_dir, setup_timeout, max((s.limit for s in songs), default=240.0),
                     proxies=not namespace)
    deadline = setup_timeout + sum(s.limit for s in songs) + GRACE
    output = work / "output.txt"
    start = time.perf_counter()
    timed_out, shown = False, 0
    with open(output, "wb") as sink:
        process = subprocess.Popen(command, cwd=repo, env=env, stdout=sink, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        while process.poll() is None:
            if time.perf_counter() - start > deadline:
                timed_out = True
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                break
            time.sleep(0.2)
            if not quiet:
                shown = _progress(read_events(log), shown, songs)
    if not quiet:
        _progress(read_events(log), shown, songs)
    text = output.read_text(encoding="utf-8", errors="replace")
    return {"code": process.returncode, "timed_out": timed_out, "seconds": time.perf_counter() - start,
            "events": read_events(log), "output_tail": text[-3000:], "network": network}


def _progress(events: list[dict], shown: int, songs: list[Song]) -> int:
    limits = {s.name: s.limit for s in songs}
    for event in [e for e in events if e["event"] in ("setup", "song")][shown:]:
        if event["event"] == "setup":
            line = f"setup: {event['seconds']:.1f} s"
        else:
            line = f"song {event['song']}: {event['seconds']:.1f} s of {limits.get(event['song'], 0):.4g} s"
        print("[check] " + line + (f" ({event['error']})" if event.get("error") else ""), file=sys.stderr)
        shown += 1
    return shown


def run_checks(args: argparse.Namespace) -> dict:
    """Every check; returns the report (``report["ok"]`` is the verdict)."""
    repo = args.repo.resolve()
    factor = args.time_limit_factor
    if factor is None and args.time_limit is None and args.format == "sdx23":
        factor = SDX23_FACTOR
    checks: list[Check] = []
    entry = "predict.py" if args.format == "mdx21" else "my_submission/user_config.py"
    if not (repo / entry).is_file():
        checks.append(Check("entry point", "fail", f"{repo / entry}: missing",
                            "run the check from the submission's folder or pass --repo"
                            + ("; `python -m submission pack --format sdx23` writes it"
                               if args.format == "sdx23" else "")))
    checks += check_aicrowd_json(repo, args.format)
    checks += check_weights(repo)
    report = {"repo": str(repo), "format": args.format, "songs": [], "setup_timeout": args.setup_timeout,
              "time_limit": None if factor is not None else (args.time_limit or 240.0),
              "time_limit_factor": factor}
    try:
        data_dir = resolve_data_dir(repo, args.data_dir, args.quiet or args.json)
        songs = list_songs(data_dir, args.time_limit, factor)
    except Exception as exc:  # noqa: BLE001 - reported as a failed check
        checks.append(Check("data", "fail", f"no test songs: {exc}",
                            "pass --data-dir DIR with <song>/mixture.wav folders"))
        return _finish(report, checks)
    report["data_dir"] = str(data_dir)
    checks.append(Check("data", "ok", f"{len(songs)} song(s) in {data_dir} "
                                      f"({sum(s.duration for s in songs):.1f} s of audio)"))
    if any(c.name == "entry point" for c in checks):
        return _finish(report, checks)
    with tempfile.TemporaryDirectory(prefix="stemblend-check-") as tmp:
        work = Path(tmp)
        results_dir = (args.results_dir or work / "results").resolve()
        results_dir.mkdir(parents=True, exist_ok=True)
        for song in songs:  # stale stems from an earlier run in --results-dir must not pass for new ones
            for instrument in TARGETS:
                (results_dir / song.name / f"{instrument}.wav").unlink(missing_ok=True)
        run = run_submission(repo, songs, data_dir, results_dir, work, args.setup_timeout, args.format,
                             not args.no_namespace, args.quiet or args.json)
        events = run["events"]
        report["network"] = run["network"]
        report["run_seconds"] = round(run["seconds"], 2)
        checks += judge_network(events, run["network"])
        checks += judge_setup(events, args.setup_timeout)
        for song in songs:
            song_report, check = judge_song(song, events)
            checks.append(check)
            song_report.outputs, output_checks = check_song_outputs(song, results_dir)
            checks += output_checks
            report["songs"].append(song_report.to_dict())
        checks.append(_judge_exit(run))
    return _finish(report, checks)


def _judge_exit(run: dict) -> Check:
    if run["timed_out"]:
        return Check("run", "fail", f"killed after {run['seconds']:.0f} s (setup limit + sum of the song "
                                    f"limits + {GRACE:.0f} s)", "make it faster; see the song times above")
    if run["code"] != 0:
        tail = " | ".join(run["output_tail"].strip().splitlines()[-6:])
        return Check("run", "fail", f"exited with code {run['code']}: {tail}",
                     "run `python predict.py` from the submission's folder and fix the error")
    return Check("run", "ok", f"exit code 0 after {run['seconds']:.1f} s")


def _finish(report: dict, checks: list[Check]) -> dict:
    report["checks"] = [c.to_dict() for c in checks]
    report["failures"] = sum(c.status == "fail" for c in checks)
    report["warnings"] = sum(c.status == "warn" for c in checks)
    report["ok"] = report["failures"] == 0
    return report


# -- the report ---------------------------------------------------------------------------------
def format_report(report: dict) -> str:
    """The human-readable table: every check, then the per-song times and outputs, then the fixes."""
    mark = {"ok": "ok", "warn": "WARN", "fail": "FAIL"}
    checks = report["checks"]
    width = max([len(c["name"]) for c in checks] + [5])
    lines = [f"Pre-flight check of {report['repo']} ({report['format']} layout)"]
    lines.append("")
    lines += [f"{mark[c['status']]:<5} {c['name']:<{width}}  {c['message']}" for c in checks]
    if report["songs"]:
        lines += ["", f"{'song':<24} {'dur s':>7} {'time s':>8} {'limit s':>8} {'margin':>7}  clipped"]
        for s in report["songs"]:
            clipped = sum(o.get("clipped", 0) for o in s["outputs"].values())
            time_s = f"{s['seconds']:.1f}" if s["seconds"] is not None else "-"
            margin = f"{100 * s['margin']:.0f}%" if s["margin"] is not None else "-"
            lines.append(f"{s['song'][:24]:<24} {s['duration']:>7.1f} {time_s:>8} {s['limit']:>8.1f} "
                         f"{margin:>7}  {clipped}")
    todo = [c for c in checks if c["status"] != "ok" and c["fix"]]
    if todo:
        lines += ["", "What to fix:"]
        lines += [f"  - {c['name']}: {c['fix']}" for c in todo]
    verdict = "PASSED" if report["ok"] else "FAILED"
    lines += ["", f"{verdict}: {report['failures']} failure(s), {report['warnings']} warning(s)"]
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    report = run_checks(args)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_report(report))
    return 0 if report["ok"] else 1
