import numpy as np

from kirinuki.settling import LEVEL, REACH, settle


def _disc_over_haze(size: int = 96) -> np.ndarray:
    """A disc whose inside the network left at 0.98, with a soft 3-pixel rim, on a background
    left at 0.02; a half-transparent patch (0.5) far from the disc; a faint strand (0.02)
    touching its rim."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    r = np.hypot(y - 40, x - 40)
    alpha = np.clip((30 - r) / 3 + 0.5, 0, 1) * 0.96 + 0.02
    alpha[80:90, 80:90] = 0.5
    alpha[40, 71:74] = 0.02
    return alpha.astype(np.float32)


def test_far_from_the_outline_near_certain_alpha_becomes_exact():
    alpha = _disc_over_haze()
    out = settle(alpha)
    y, x = np.mgrid[0:96, 0:96]
    r = np.hypot(y - 40, x - 40)
    assert (out[r < 30 - 2 - REACH - 1] == 1.0).all()           # the inside: opaque
    far_out = (r > 30 + 2 + REACH + 1)
    far_out[78:92, 78:92] = False
    far_out[38:43, 69:76] = False
    assert (out[far_out] == 0.0).all()                           # the haze: gone
    near = np.abs(r - 30) < 1.5
    np.testing.assert_array_equal(out[near], alpha[near])        # the outline's own soft pixels stay
    np.testing.assert_array_equal(out[80:90, 80:90], alpha[80:90, 80:90])  # half transparent: kept
    np.testing.assert_array_equal(out[40, 71:74], alpha[40, 71:74])        # a strand at the rim: kept


def test_only_values_within_the_level_move():
    alpha = _disc_over_haze()
    out = settle(alpha)
    moved = out != alpha
    assert moved.any()
    assert (np.minimum(alpha[moved], 1 - alpha[moved]) < LEVEL).all()
    assert settle(out).tolist() == out.tolist()  # settling twice changes nothing
