"""Oracle predictors: they read the true stems beside the mixture and give the upper bounds of a report.

* ``oracle-irm``: per target, the ratio mask ``|S_j| / (|S_j| + |X - S_j|)`` on the mixture STFT
  ``X`` (each target against the rest of the mix), then the inverse STFT.
* ``oracle-wiener``: the multichannel Wiener filter of ``openunmix.filtering.wiener`` fed with the
  true stems' magnitude spectrograms (``niter`` EM iterations, default 1), applied window by window
  (``wiener_win_len`` frames, default 300, the meaning of umx's ``--wiener-win-len``).

Both use open-unmix's STFT (``n_fft`` 4096, hop 1024, centred). The stems must lie in the song
folder of the mixture (``<song>/{bass,drums,other,vocals}.wav``), so these predictors only work on
the test set, never on the 2023 ``separate_music_file`` API.
"""

from __future__ import annotations

import numpy as np

from core.audio import fit_length, match_channels, read_audio, resample
from submission.base import SeparatorPredictor
from submission.registry import register

N_FFT = 4096
N_HOP = 1024
EPS = 1e-10


class OraclePredictor(SeparatorPredictor):
    """Base of the oracles: loads the reference stems of the song being separated."""

    def reference_stems(self, length: int) -> np.ndarray:
        """The true stems, converted like the mixture.

        Args:
            length: the mixture's ``nb_timesteps`` at :attr:`sample_rate`.

        Returns:
            ``(nb_sources, nb_channels, nb_timesteps)`` float32 at :attr:`sample_rate`.
        """
        if self.reference_dir is None:
            raise ValueError(f"predictor '{self.name}' needs the reference stems beside the mixture "
                             "(it only works on a test set folder)")
        stems = []
        for target in self.instruments:
            audio, rate = read_audio(self.reference_dir / f"{target}.wav", allow_empty=True)
            audio = resample(match_channels(audio, self.nb_channels), rate, self.sample_rate)
            stems.append(fit_length(audio, length))
        return np.stack(stems).astype(np.float32)

    def _filterbanks(self):
        from openunmix.transforms import make_filterbanks

        return make_filterbanks(n_fft=N_FFT, n_hop=N_HOP, center=True, sample_rate=self.sample_rate)

    def separate(self, mixture: np.ndarray) -> dict[str, np.ndarray]:
        """``mixture (nb_channels, nb_timesteps)`` -> ``{target: (nb_channels, nb_timesteps)}``."""
        import torch

        stems = self.reference_stems(mixture.shape[-1])
        stft, istft = self._filterbanks()
        with torch.no_grad():
            mix_stft = stft(torch.from_numpy(mixture)[None])[0]  # (C, F, N, 2)
            stems_stft = stft(torch.from_numpy(stems))  # (S, C, F, N, 2)
            est_stft = self.filter(mix_stft, stems_stft)  # (S, C, F, N, 2)
            estimates = istft(est_stft, length=mixture.shape[-1]).numpy()
        return {target: estimates[j] for j, target in enumerate(self.instruments)}

    def filter(self, mix_stft, stems_stft):
        """``mix_stft (C, F, N, 2)``, ``stems_stft (S, C, F, N, 2)`` -> estimates ``(S, C, F, N, 2)``."""
        raise NotImplementedError


class OracleIRMPredictor(OraclePredictor):
    """Ideal ratio mask of each target against the rest of the mixture."""

    def filter(self, mix_stft, stems_stft):
        import torch

        mix = torch.view_as_complex(mix_stft.contiguous())  # (C, F, N)
        stems = torch.view_as_complex(stems_stft.contiguous())  # (S, C, F, N)
        target_mag = stems.abs()
        rest_mag = (mix[None] - stems).abs()
        mask = target_mag / (target_mag + rest_mag + EPS)
        return torch.view_as_real(mask * mix[None])


class OracleWienerPredictor(OraclePredictor):
    """Multichannel Wiener filter with the true stems' spectrograms (open-unmix's implementation).

    Options: ``niter`` (EM iterations, default 1), ``wiener_win_len`` (frames per window, default
    300; 0 or None for the whole song at once).
    """

    def filter(self, mix_stft, stems_stft):
        import torch
        from openunmix.filtering import wiener

        niter = int(self.options.get("niter", 1))
        win = self.options.get("wiener_win_len", 300) or mix_stft.shape[2]
        mix = mix_stft.permute(2, 1, 0, 3)  # (N, F, C, 2)
        spectrograms = torch.linalg.vector_norm(stems_stft, dim=-1).permute(3, 2, 1, 0)  # (N, F, C, S)
        nb_frames = mix.shape[0]
        out = torch.zeros(mix.shape + (stems_stft.shape[0],), dtype=mix.dtype)  # (N, F, C, 2, S)
        for pos in range(0, nb_frames, int(win)):
            frames = slice(pos, min(nb_frames, pos + int(win)))
            out[frames] = wiener(spectrograms[frames], mix[frames], niter, softmask=False, residual=False)
        return out.permute(4, 2, 1, 0, 3).contiguous()  # (S, C, F, N, 2)


@register("oracle-irm", help="oracle ratio mask |S_j| / (|S_j| + |X - S_j|) of the true stems (upper bound)")
def _oracle_irm(options: dict) -> OracleIRMPredictor:
    return OracleIRMPredictor(**options)


@register("oracle-wiener", help="oracle multichannel Wiener filter from the true stems (upper bound)")
def _oracle_wiener(options: dict) -> OracleWienerPredictor:
    return OracleWienerPredictor(**options)
