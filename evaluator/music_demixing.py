"""Our copy of the AIcrowd Music Demixing 2021 evaluator (``evaluator/music_demixing.py``).

The grader overwrites this file with its own before it runs ``python predict.py``, so the kit's
predictors subclass :class:`MusicDemixingPredictor` and rely on nothing else defined here. This copy
behaves as the grader's does:

* ``__init__`` reads ``TEST_DATASET_PATH`` (default ``<cwd>/data/test/``), ``RESULTS_DATASET_PATH``
  (``<cwd>/data/results/``), ``INFERENCE_SETUP_TIMEOUT_SECONDS`` (900),
  ``INFERENCE_PER_MUSIC_TIMEOUT_SECONDS`` (240) and ``PARTIAL_RUN_MUSIC_NAMES`` (comma list).
  A subclass that defines ``__init__`` must call this one.
* :meth:`evaluation` runs ``prediction_setup()`` under a SIGALRM time limit (a
  ``NotImplementedError`` there is skipped), then, for every sub-folder of the test path and under
  the per-song limit, calls ``prediction(mixture_file_path=..., bass_file_path=...,
  drums_file_path=..., other_file_path=..., vocals_file_path=...)`` with keyword arguments and no
  ``music_name``; ``<results>/<song>/`` exists before the call. Afterwards it only checks that the
  four files exist.
* :meth:`run` wraps :meth:`evaluation`, prints the error and re-raises unless grading.

One difference, for local use only: the grader stops at the first failing song; this copy finishes
the other songs and then raises one error naming every failure (the outcome, a failed run, is the
same).
"""

import os
import signal
import traceback
from contextlib import contextmanager
from os import listdir
from os.path import isfile, join

import numpy as np
import soundfile as sf

from evaluator import aicrowd_helpers

INSTRUMENTS = ["bass", "drums", "other", "vocals"]


class TimeoutException(Exception):
    """The setup or one song took longer than its time limit."""


class EvaluationError(Exception):
    """One or more songs failed; the message names each song and its error."""


@contextmanager
def time_limit(seconds):
    """Raise :class:`TimeoutException` in the main thread after ``seconds`` (SIGALRM, as the grader)."""

    def signal_handler(signum, frame):
        raise TimeoutException(f"Prediction timed out! (limit {seconds} s)")

    previous = signal.signal(signal.SIGALRM, signal_handler)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


class MusicDemixingPredictor:
    """Base class of every submission: subclasses implement ``prediction_setup`` and ``prediction``."""

    def __init__(self):
        self.test_data_path = os.getenv("TEST_DATASET_PATH", os.getcwd() + "/data/test/")
        self.results_data_path = os.getenv("RESULTS_DATASET_PATH", os.getcwd() + "/data/results/")
        self.inference_setup_timeout = int(os.getenv("INFERENCE_SETUP_TIMEOUT_SECONDS", "900"))
        self.inference_per_music_timeout = int(os.getenv("INFERENCE_PER_MUSIC_TIMEOUT_SECONDS", "240"))
        self.partial_run = os.getenv("PARTIAL_RUN_MUSIC_NAMES", None)
        self.results = []
        self.current_music_name = None

    # -- locations -----------------------------------------------------------------------------
    def get_all_music_names(self):
        """Sub-folders of the test path, limited to ``PARTIAL_RUN_MUSIC_NAMES`` when set."""
        valid_music_names = None
        if self.partial_run:
            valid_music_names = [name.strip() for name in self.partial_run.split(",")]
        music_names = []
        for folder in sorted(listdir(self.test_data_path)):
            if not isfile(join(self.test_data_path, folder)):
                if valid_music_names is None or folder in valid_music_names:
                    music_names.append(folder)
        return music_names

    def get_music_folder_location(self, music_name):
        return join(self.test_data_path, music_name)

    def get_music_file_location(self, music_name, instrument=None):
        """The mixture path (``instrument=None``) or an output path, creating its folder."""
        if instrument is None:
            return join(self.test_data_path, music_name, "mixture.wav")
        os.makedirs(join(self.results_data_path, music_name), exist_ok=True)
        return join(self.results_data_path, music_name, instrument + ".wav")

    # -- the run -------------------------------------------------------------------------------
    def evaluation(self):
        """Admin function: runs the whole evaluation."""
        aicrowd_helpers.execution_start()
        try:
            with time_limit(self.inference_setup_timeout):
                self.prediction_setup()
        except NotImplementedError:
            print("prediction_setup doesn't exist for this run, skipping...")
        aicrowd_helpers.execution_running()

        failures = []
        for music_name in self.get_all_music_names():
            self.current_music_name = music_name
            try:
                with time_limit(self.inference_per_music_timeout):
                    self.prediction(
                        mixture_file_path=self.get_music_file_location(music_name),
                        bass_file_path=self.get_music_file_location(music_name, "bass"),
                        drums_file_path=self.get_music_file_location(music_name, "drums"),
                        other_file_path=self.get_music_file_location(music_name, "other"),
                        vocals_file_path=self.get_music_file_location(music_name, "vocals"),
                    )
                if not self.verify_results(music_name):
                    raise Exception("verification failed, demixed files not found.")
            except Exception as exc:  # noqa: BLE001 - reported below, the other songs still run
                traceback.print_exc()
                failures.append(f"{music_name}: {type(exc).__name__}: {exc}")
        if failures:
            raise EvaluationError(f"{len(failures)} song(s) failed:\n  " + "\n  ".join(failures))
        aicrowd_helpers.execution_success()

    def run(self):
        try:
            self.evaluation()
        except Exception as e:
            error = traceback.format_exc()
            print(error)
            aicrowd_helpers.execution_error(error)
            if not aicrowd_helpers.is_grading():
                raise e

    def verify_results(self, music_name):
        """Only checks that the four output files exist (as the grader does)."""
        return all(isfile(self.get_music_file_location(music_name, name)) for name in INSTRUMENTS)

    def scoring(self):
        """The grader's global SDR per song and instrument, for the participant's reference."""

        def sdr(references, estimates):
            delta = 1e-7
            num = np.sum(np.square(references), axis=tuple(range(1, references.ndim))) + delta
            den = np.sum(np.square(references - estimates), axis=tuple(range(1, references.ndim))) + delta
            return 10 * np.log10(num / den)

        scores = {}
        for music_name in self.get_all_music_names():
            references = np.stack([sf.read(join(self.test_data_path, music_name, name + ".wav"))[0]
                                   for name in INSTRUMENTS]).astype(np.float32)
            estimates = np.stack([sf.read(join(self.results_data_path, music_name, name + ".wav"))[0]
                                  for name in INSTRUMENTS]).astype(np.float32)
            song_score = sdr(references, estimates).tolist()
            scores[music_name] = {f"sdr_{name}": value for name, value in zip(INSTRUMENTS, song_score)}
            scores[music_name]["sdr"] = float(np.mean(song_score))
        return scores

    # -- to implement --------------------------------------------------------------------------
    def prediction_setup(self):
        """Load models etc. Runs once, before the first song, under the setup time limit."""
        raise NotImplementedError

    def prediction(self, mixture_file_path, bass_file_path, drums_file_path, other_file_path,
                   vocals_file_path, music_name=None):
        """Separate one song: read ``mixture_file_path``, write the four stem files."""
        raise NotImplementedError
