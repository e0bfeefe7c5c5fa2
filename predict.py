#!/usr/bin/env python
"""The submission's entry point (the grader runs ``python predict.py``).

* ``python predict.py``: the grader's run: every song of ``TEST_DATASET_PATH`` (default
  ``data/test/``) is separated into ``RESULTS_DATASET_PATH`` (``data/results/``) by
  ``submission.run()`` of ``evaluator.music_demixing.MusicDemixingPredictor``.
* ``python predict.py FILE [FILE...] -o DIR``: separate any audio files (see ``--help``).
"""

import sys

from submission.registry import create

#: The predictor the grader runs (blend/configs/default.yaml). One line to switch, e.g. to "scaled".
DEFAULT_PREDICTOR = "ensemble"

if __name__ == "__main__":
    if len(sys.argv) > 1:
        from submission.cli import main

        sys.exit(main(sys.argv[1:], default_predictor=DEFAULT_PREDICTOR))
    submission = create(DEFAULT_PREDICTOR)
    submission.run()
    print("Successfully completed music demixing...")
