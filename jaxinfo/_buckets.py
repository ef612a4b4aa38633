"""The one size-bucket rule behind every padded shape (kernel blocks, structure batches).

Padding a size up to a bucket lets nearby sizes share one compiled program; the rule below
bounds the padding at a fixed fraction of the size while keeping the number of buckets
logarithmic in it.
"""

from __future__ import annotations


def geometric_bucket(n: int, per_doubling: int, *, minimum: int = 1, max_step: int = 0) -> int:
    """Smallest ``m * 2^e >= max(n, minimum)`` with ``per_doubling <= m < 2 * per_doubling``.

    There are ``per_doubling`` buckets between ``2^a`` and ``2^(a+1)``, so padding adds less than
    ``1 / per_doubling`` of the size; sizes below ``2 * per_doubling`` are their own bucket.
    ``per_doubling=1`` gives powers of two, ``2`` gives 8, 12, 16, 24, 32, ...
    ``max_step > 0`` caps the spacing of buckets (multiples of ``max_step`` beyond).
    """
    n = max(int(n), int(minimum), 1)
    exponent = max(0, (n - 1).bit_length() - int(per_doubling).bit_length())
    step = 1 << exponent
    if max_step > 0:
        step = min(step, max_step)
    return -(-n // step) * step
