"""The predictor every StemBlend submission derives from: the 2021 and the 2023 challenge APIs, once.

:class:`SeparatorPredictor` relies only on ``MusicDemixingPredictor`` from
``evaluator.music_demixing`` (the grader swaps that file for its own). It implements

* ``prediction(mixture_file_path, bass_file_path, drums_file_path, other_file_path,
  vocals_file_path, music_name=None)`` (MDX 2021): read and validate the mixture, separate, write
  each stem atomically at the mixture's rate, length and channel count;
* ``separate_music_file(mixed_sound_array, sample_rate)`` (SDX 2023): ``(n_samples, n_channels)``
  in, ``({instrument: (n_samples, n_channels)}, {instrument: sample_rate})`` out.

Both go through :meth:`SeparatorPredictor.separate_audio`, which hands the model what it expects
(``(nb_channels, nb_timesteps)`` float32 stereo at 44.1 kHz: mono is duplicated, other rates are
resampled) and restores the input's rate, length and channel count afterwards. Subclasses implement
``prediction_setup()`` (load models; runs once per instance, whoever calls it first) and
``separate(mixture (nb_channels, nb_timesteps)) -> {target: (nb_channels, nb_timesteps)}``.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from core.audio import audio_writers, fit_length, match_channels, read_audio, resample, write_audio
from core.constants import SAMPLE_RATE, TARGETS
from core.errors import AudioFileError
from evaluator.music_demixing import MusicDemixingPredictor

#: Channel counts the kit accepts as input (outputs keep the input's count).
SUPPORTED_CHANNELS = (1, 2)


def _run_once(setup):
    """Make ``prediction_setup`` idempotent: the grader, the runner and the 2023 API may all call it."""

    @functools.wraps(setup)
    def wrapper(self, *args, **kwargs):
        if getattr(self, "_setup_done", False):
            return None
        result = setup(self, *args, **kwargs)
        self._setup_done = True
        return result

    wrapper._runs_once = True
    return wrapper


class SeparatorPredictor(MusicDemixingPredictor):
    """Base predictor: subclasses implement :meth:`separate` (and :meth:`prediction_setup` if needed).

    Args:
        **options: predictor options (``subtype`` of the written stems, default ``"FLOAT"`` so that
            the grader reads exactly what was computed; plus whatever a subclass understands, e.g.
            ``wiener``, ``shifts``). Options a predictor does not use are kept and ignored.
    """

    #: the 2023 API's attribute; also the order of the stems
    instruments = list(TARGETS)
    #: what :meth:`separate` receives
    sample_rate = SAMPLE_RATE
    nb_channels = 2

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        setup = cls.__dict__.get("prediction_setup")
        if setup is not None and not getattr(setup, "_runs_once", False):
            cls.prediction_setup = _run_once(setup)

    def __init__(self, **options):
        super().__init__()
        self.options = dict(options)
        self.subtype = self.options.get("subtype", "FLOAT")
        #: folder of the song being separated (oracles read the reference stems there)
        self.reference_dir: Path | None = None

    # -- to implement --------------------------------------------------------------------------
    @_run_once
    def prediction_setup(self):
        """Load models. Nothing to load by default."""

    def separate(self, mixture: np.ndarray) -> dict[str, np.ndarray]:
        """Separate one mixture.

        Args:
            mixture: ``(nb_channels, nb_timesteps)`` float32 at :attr:`sample_rate` with
                :attr:`nb_channels` channels.

        Returns:
            ``{target: (nb_channels, nb_timesteps)}`` for every target in :attr:`instruments`.
        """
        raise NotImplementedError

    def fingerprint(self) -> str:
        """What else decides the output beyond name and options (e.g. checkpoint sha256s).

        ``test.py`` reuses a song's stems only when this is unchanged; predictors with weights
        override it. Called after :meth:`prediction_setup`.
        """
        return ""

    # -- shared machinery ----------------------------------------------------------------------
    @property
    def name(self) -> str:
        return getattr(self, "registry_name", type(self).__name__)

    def separate_audio(self, audio: np.ndarray, rate: int) -> dict[str, np.ndarray]:
        """Separate audio at any rate, mono or stereo.

        Args:
            audio: ``(nb_channels, nb_timesteps)`` finite float audio, 1 or 2 channels.
            rate: its sample rate in Hz.

        Returns:
            ``{target: (nb_channels, nb_timesteps)}`` float32 with the input's rate, length and
            channel count.
        """
        nb_channels, length = audio.shape
        if nb_channels not in SUPPORTED_CHANNELS:
            raise ValueError(f"{nb_channels} channels: only mono and stereo are supported")
        if length == 0:
            raise ValueError("audio has zero length")
        self.prediction_setup()
        model_in = match_channels(np.asarray(audio, dtype=np.float32), self.nb_channels)
        model_in = resample(model_in, rate, self.sample_rate)
        estimates = self._checked(self.separate(np.ascontiguousarray(model_in, dtype=np.float32)))
        out = {}
        for target, est in estimates.items():
            est = resample(fit_length(est, model_in.shape[-1]), self.sample_rate, rate)
            out[target] = np.ascontiguousarray(match_channels(fit_length(est, length), nb_channels),
                                               dtype=np.float32)
        return out

    def read_mixture(self, mixture_file_path: str | Path) -> tuple[np.ndarray, int]:
        """Read and validate a mixture file: ``((nb_channels, nb_timesteps) float32, rate)``.

        Raises:
            AudioFileError: the mixture is missing, unreadable, corrupt, empty, non-finite or has
                more than two channels (the message names the file).
        """
        path = Path(mixture_file_path)
        audio, rate = read_audio(path)
        if audio.shape[0] not in SUPPORTED_CHANNELS:
            raise AudioFileError(path, f"{audio.shape[0]} channels: only mono and stereo are supported")
        return audio, rate

    def separate_file(self, mixture_file_path: str | Path) -> tuple[dict[str, np.ndarray], int]:
        """Read and validate a mixture file (:meth:`read_mixture`), then separate it.

        Returns:
            ``({target: (nb_channels, nb_timesteps)}, rate)`` at the file's rate and channel count.
        """
        audio, rate = self.read_mixture(mixture_file_path)
        return self._separate_song(Path(mixture_file_path), audio, rate), rate

    def _separate_song(self, path: Path, audio: np.ndarray, rate: int) -> dict[str, np.ndarray]:
        """:meth:`separate_audio` with :attr:`reference_dir` set to the song's folder meanwhile."""
        self.reference_dir = path.parent
        try:
            return self.separate_audio(audio, rate)
        finally:
            self.reference_dir = None

    def prediction(self, mixture_file_path, bass_file_path, drums_file_path, other_file_path,
                   vocals_file_path, music_name=None):
        """The MDX 2021 call: separate ``mixture_file_path`` and write the four stems atomically.

        A predictor that can stream (:meth:`separate_stream`) writes its stems block by block when
        the mixture is already at its rate and channel count, so no whole-song stem is held in
        memory; the four files appear together at the end, or not at all on an error.
        """
        outputs = {"bass": bass_file_path, "drums": drums_file_path, "other": other_file_path,
                   "vocals": vocals_file_path}
        audio, rate = self.read_mixture(mixture_file_path)
        if self.can_stream and rate == self.sample_rate and audio.shape[0] == self.nb_channels:
            self.prediction_setup()
            with audio_writers(outputs, rate, audio.shape[0], self.subtype) as write:
                self.separate_stream(audio, lambda blocks: write(self._checked(blocks)))
            return
        estimates = self._separate_song(Path(mixture_file_path), audio, rate)
        for target, path in outputs.items():
            write_audio(path, estimates[target], rate, subtype=self.subtype)

    #: whether :meth:`separate_stream` is implemented
    can_stream = False

    def separate_stream(self, mixture: np.ndarray, write) -> None:
        """Separate one mixture block by block (for predictors with :attr:`can_stream`).

        Args:
            mixture: as :meth:`separate`.
            write: ``write({target: (nb_channels, n)})``, called with consecutive blocks that
                together cover the song, for every target in :attr:`instruments`.
        """
        raise NotImplementedError

    def _checked(self, estimates: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """What :meth:`separate` (or a streamed block) returned, checked: every target of
        :attr:`instruments`, ``(nb_channels, n)`` float32 with the model's channel count, finite."""
        missing = [t for t in self.instruments if t not in estimates]
        if missing:
            raise ValueError(f"predictor '{self.name}' returned no estimate for {missing}")
        out = {}
        for target in self.instruments:
            est = np.asarray(estimates[target], dtype=np.float32)
            if est.ndim != 2 or est.shape[0] != self.nb_channels:
                raise ValueError(f"predictor '{self.name}': {target} estimate has shape {est.shape}, "
                                 f"expected ({self.nb_channels}, nb_timesteps)")
            if not np.all(np.isfinite(est)):
                raise ValueError(f"predictor '{self.name}': {target} estimate contains NaN or Inf")
            out[target] = est
        return out

    def separate_music_file(self, mixed_sound_array: np.ndarray, sample_rate: int):
        """The SDX 2023 call.

        Args:
            mixed_sound_array: ``(n_samples, n_channels)`` (or ``(n_samples,)`` mono) as
                ``soundfile.read`` returns it.
            sample_rate: its rate in Hz.

        Returns:
            ``(separated_music_arrays, output_sample_rates)``: ``{instrument: (n_samples,
            n_channels)}`` (same shape as the input) and ``{instrument: sample_rate}``.
        """
        array = np.asarray(mixed_sound_array)
        if array.ndim not in (1, 2) or array.size == 0:
            raise ValueError(f"mixed_sound_array: expected (n_samples, n_channels), got shape {array.shape}")
        if not np.all(np.isfinite(array)):
            raise ValueError("mixed_sound_array: contains NaN or Inf samples")
        audio = array.reshape(len(array), -1).T.astype(np.float32)
        estimates = self.separate_audio(audio, int(sample_rate))
        arrays = {t: est.T.reshape(array.shape) for t, est in estimates.items()}
        return arrays, {t: int(sample_rate) for t in estimates}
