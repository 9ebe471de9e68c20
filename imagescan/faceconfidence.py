"""How sure a face match is: the probability that two faces this far apart are one person.

A logistic fit of "same person" on the distance between the encodings of two faces
(imagescan.analyzers.faces), over every pair of the shared labelled single-face photos
(bench/faces.py prints the fit's reliability table). The probability is one half at
MATCH_MIDPOINT and falls by a factor of about e every 1/MATCH_SLOPE beyond it. It depends
on how many photos of one person a collection holds; read it as a ranking calibrated on
collections like those. Kept free of engine imports: the REST layer reports it.
"""

from __future__ import annotations

import math

MATCH_MIDPOINT = 0.546
MATCH_SLOPE = 62.1


def match_confidence(distance: float) -> float:
    """Probability (0..1) that two faces `distance` apart are the same person."""
    return 1.0 / (1.0 + math.exp(min(60.0, MATCH_SLOPE * (float(distance) - MATCH_MIDPOINT))))
