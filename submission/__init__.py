"""StemBlend's submission: the challenge APIs, baselines, oracles, the local grader and scoring.

* :mod:`submission.base` - :class:`~submission.base.SeparatorPredictor`, the 2021 and 2023 APIs.
* :mod:`submission.registry` - predictors by name (``copy``, ``scaled``, ``oracle-irm``, ...).
* :mod:`submission.runner` - the local grader emulation (time limits, ``-j``, skip-complete).
* :mod:`submission.scoring` - the grader's SDR, museval v4, ``results.json``.
* :mod:`submission.cli` - ``python predict.py FILE... -o DIR``.
"""
