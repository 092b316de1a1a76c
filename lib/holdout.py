"""The holdout (control group): users of the audience the campaign deliberately does not contact.

Without a control group nobody can tell what contacting people *changed*: users with high
scores convert anyway. A random share of the audience is held out, and the difference
between the groups' conversion rates afterwards is the campaign's measured effect
(notebook 06).

A user's group is a pure function of (campaign id, user id): a 64-bit mix (SplitMix64's
finaliser) of the two ids gives a number uniform in [0, 1); below the campaign's
``holdout_share`` is ``control``. Every engine and transport computes it with this same
numpy code (in Spark's Python tasks, or in process), so groups agree row for row; a re-run
puts every user in the same group again (no state, no seed to store); and two campaigns
hold out different users. Raising the share only moves treatment users into control.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import pyarrow as pa

# The API's bounds (lib.contract): more control than treatment would contact too few people.
from lib.contract import DEFAULT_HOLDOUT_SHARE, MAX_HOLDOUT_SHARE
from lib.schema import GROUP

__all__ = [
    "CONTROL",
    "DEFAULT_HOLDOUT_SHARE",
    "MAX_HOLDOUT_SHARE",
    "TREATMENT",
    "holdout_draw",
    "is_control",
    "with_groups",
]

TREATMENT: Final = "treatment"
CONTROL: Final = "control"

_GOLDEN: Final = np.uint64(0x9E3779B97F4A7C15)
_MIX_1: Final = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2: Final = np.uint64(0x94D049BB133111EB)
_SALT: Final = 0x5EED_0C0A  # holdout draws differ from any other use of the same mix


def _mix(values: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: every input bit moves every output bit (uint64, wrapping)."""
    z = values.astype(np.uint64, copy=True)
    shifted = np.empty_like(z)  # in place, one scratch array: no temporaries per step
    for shift, factor in ((30, _MIX_1), (27, _MIX_2)):
        np.right_shift(z, np.uint64(shift), out=shifted)
        np.bitwise_xor(z, shifted, out=z)
        np.multiply(z, factor, out=z)
    np.right_shift(z, np.uint64(31), out=shifted)
    np.bitwise_xor(z, shifted, out=z)
    return z


def _draw_bits(key: int, user_ids: np.ndarray) -> np.ndarray:
    """53 uniform bits per user (uint64 below 2**53), a pure function of (key, user id)."""
    with np.errstate(over="ignore"):
        base = _mix(np.array([key & 0xFFFF_FFFF_FFFF_FFFF], dtype=np.uint64))[0]
        ids = np.asarray(user_ids, dtype=np.int64).view(np.uint64)
        mixed = _mix(ids * _GOLDEN + base)
    return np.right_shift(mixed, np.uint64(11), out=mixed)


def uniform_draw(key: int, user_ids: np.ndarray) -> np.ndarray:
    """A number in [0, 1) per user, a pure function of (``key``, user id)."""
    return _draw_bits(key, user_ids).astype(np.float64) / float(1 << 53)


def _holdout_key(campaign_id: int) -> int:
    return (campaign_id << 32) ^ _SALT


def holdout_draw(campaign_id: int, user_ids: np.ndarray) -> np.ndarray:
    """The user's draw for this campaign's holdout: uniform in [0, 1)."""
    return uniform_draw(_holdout_key(campaign_id), user_ids)


def is_control(campaign_id: int, user_ids: np.ndarray, share: float) -> np.ndarray:
    """Which users the campaign holds out (True: control)."""
    if not 0.0 <= share <= MAX_HOLDOUT_SHARE:
        raise ValueError(f"holdout share must be between 0 and {MAX_HOLDOUT_SHARE}, got {share}")
    # The same test as holdout_draw(...) < share, on the integers (no float array).
    threshold = np.uint64(math.ceil(share * (1 << 53)))
    return _draw_bits(_holdout_key(campaign_id), user_ids) < threshold


def with_groups(batch: pa.RecordBatch, campaign_id: int, share: float) -> pa.RecordBatch:
    """``batch`` (with ``user_id``) plus its ``group`` column: treatment or control."""
    import pyarrow.compute as pc

    ids = batch.column("user_id").to_numpy(zero_copy_only=False)
    control = pa.array(is_control(campaign_id, ids, share))
    # Arrow builds the strings (numpy would build Python-sized ones first: 25x slower).
    return batch.append_column(GROUP, pc.if_else(control, CONTROL, TREATMENT))
