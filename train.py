"""Train an ensemble member: ``python train.py --model NAME --data-dir DIR ...`` (see models/train_cli.py).

Multi-process (DDP, gloo, CPU): ``torchrun --nproc_per_node 2 train.py --model NAME ...``.
"""

import sys

from models.train_cli import main

if __name__ == "__main__":
    sys.exit(main())
