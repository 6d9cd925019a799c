"""The assignment checks of ``exercise_checks.py`` for every fourth assignment from the
4th (one module per share, so that ``pytest -n`` spreads them over the workers)."""

from exercise_checks import *  # noqa: F403
from exercise_checks import shard

SHARD = shard(3, 4)
