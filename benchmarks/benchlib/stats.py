"""Order statistics for timing samples."""

import math
import statistics


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def p90(samples: list[float]) -> float:
    """Nearest-rank 90th percentile: always one of the observed values."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(0.9 * len(ordered)))
    return ordered[rank - 1]
