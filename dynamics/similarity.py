"""Similarity of representations: linear CKA, and CKA over training from a probe's series.

Linear centred kernel alignment (Kornblith, Norouzi, Lee and Hinton, "Similarity of Neural
Network Representations Revisited", ICML 2019) compares two representations of the same
``n`` examples, ``X`` (n, p) and ``Y`` (n, q), after centring each column::

    CKA(X, Y) = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)

It is 1 for identical representations, and unchanged by an orthogonal transform or an
isotropic scaling of either (so a layer whose features only rotate or grow keeps CKA 1 to
its start); 0 where they share no linear structure. Computed with the ``n x n`` Gram
matrices ``X X^T`` where features outnumber examples (the same value:
``||Y^T X||_F^2 = tr(X X^T Y Y^T)`` and ``||X^T X||_F = ||X X^T||_F``), so a transformer's
``(n, tokens * width)`` output costs ``n^2`` per snapshot. Numpy only, in float64.
"""

from __future__ import annotations

import numpy as np

from .recording import Recording

__all__ = ["linear_cka", "cka_over_training", "probe_series"]

REFERENCES = ("initial", "final")


def _centred(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 1 or len(x) < 2:
        raise ValueError(f"linear_cka needs at least 2 examples on the first axis, got {x.shape}")
    x = x.reshape(len(x), -1)
    return x - x.mean(axis=0)


def _gram(x: np.ndarray) -> np.ndarray:
    """``X X^T`` of the centred ``x`` (n, n)."""
    return x @ x.T


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA of two representations of the same examples.

    Parameters
    ----------
    x : ``(n, *features)`` array
    y : ``(n, *features')`` array
        The examples on the first axis of both; features are flattened.

    Returns
    -------
    float
        In [0, 1]; NaN where either representation is constant over the examples (a
        centred matrix of zeros has no direction to compare).
    """
    x, y = _centred(x), _centred(y)
    if len(x) != len(y):
        raise ValueError(f"linear_cka: {len(x)} examples in x but {len(y)} in y")
    if max(x.shape[1], y.shape[1]) > len(x):  # n x n Gram matrices are the smaller ones
        return _cka_of_grams(_gram(x), _gram(y))
    cross = np.sum((y.T @ x) ** 2)
    nx, ny = np.linalg.norm(x.T @ x), np.linalg.norm(y.T @ y)
    return float(cross / (nx * ny)) if nx > 0 and ny > 0 else float("nan")


def _cka_of_grams(kx: np.ndarray, ky: np.ndarray) -> float:
    """CKA from the Gram matrices of the centred representations."""
    nx, ny = np.linalg.norm(kx), np.linalg.norm(ky)
    return float(np.sum(kx * ky) / (nx * ny)) if nx > 0 and ny > 0 else float("nan")


def probe_series(recording: Recording) -> list[str]:
    """The probe outputs of ``recording`` (kind ``probe``, ``Recorder(quantities=[Probe(...)])``),
    in recording order."""
    return list(recording.of_kind("probe"))


def cka_over_training(
    recording: Recording, name: str, reference: str = "initial"
) -> tuple[np.ndarray, np.ndarray]:
    """Linear CKA of each snapshot of a probe series to its first (or last) snapshot.

    Parameters
    ----------
    recording : Recording
    name : str
        A probe series (``probe/encoder.layers.0``), or the module's name
        (``encoder.layers.0``) for ``probe/<name>``.
    reference : str
        ``"initial"``: to the first snapshot (1 at the start, falling as the layer's
        representation moves away from it); ``"final"``: to the last (rising to 1 at the
        end).

    Returns
    -------
    steps : (T,) int64 array
    values : (T,) float64 array
        Read one snapshot at a time (a recording on disk stays on disk).
    """
    if reference not in REFERENCES:
        raise ValueError(f"reference must be one of {', '.join(REFERENCES)}, got {reference!r}")
    key = name if name in recording or f"probe/{name}" not in recording else f"probe/{name}"
    series = recording[key]
    if len(series) == 0 or len(series.shape) < 1:
        raise ValueError(f"series {key!r} has no snapshots of (n, *features) to compare")
    values = series.values
    ref = _centred(values[0 if reference == "initial" else len(values) - 1])
    wide = ref.shape[1] > len(ref)  # Gram matrices: computed once for the reference
    ref_gram = _gram(ref) if wide else None
    out = np.empty(len(values))
    for t in range(len(values)):
        if wide:
            out[t] = _cka_of_grams(_gram(_centred(values[t])), ref_gram)
        else:
            out[t] = linear_cka(values[t], ref)
    return np.asarray(series.steps, dtype=np.int64), out
