"""How the ``embedding`` similarity's CCP bands were chosen: a labelled table of word pairs, cosines, a grid fit.

CCP asks, for each alternative token, whether it keeps the emitted token's meaning (entail), changes it
(contradict) or is unrelated (neutral). NLI models answer that; offline we only have all-MiniLM-L6-v2, whose
cosine is high for synonyms and spellings, middling for another value of the same kind ("Lisbon"/"Porto")
and low for unrelated words. This script labels word pairs of each kind by hand, computes their cosines,
and picks the two thresholds (``entail_at`` > ``contradict_at``) with the best 3-way accuracy on the grid
0.10–0.99 step 0.01 (ties: the first found, i.e. the lowest thresholds). Run:

    .venv/bin/python benchmarks/ccp_thresholds.py
"""

from __future__ import annotations

import numpy as np

#: Same meaning: spelling, case, synonyms, abbreviations, numerals.
ENTAIL = [
    ("Lisbon", "lisbon"), ("big", "large"), ("USA", "US"), ("1", "one"), ("km", "kilometres"), ("euro", "Euro"),
    ("Portuguese", "portuguese"), ("largest", "biggest"), ("city", "town"), ("begin", "start"),
    ("car", "automobile"), ("UK", "Britain"), ("twelve", "12"), ("quick", "fast"), ("people", "persons"),
    ("mother", "mom"), ("photo", "picture"), ("TV", "television"), ("nation", "country"), ("colour", "color"),
]
#: Another value of the same kind: the claim would change.
CONTRADICT = [
    ("Paris", "London"), ("1990", "1991"), ("red", "blue"), ("Spain", "France"), ("Europe", "Asia"),
    ("euro", "dollar"), ("Lisbon", "Porto"), ("million", "billion"), ("north", "south"), ("first", "second"),
    ("10", "11"), ("capital", "largest"), ("Canberra", "Sydney"), ("king", "queen"), ("Monday", "Tuesday"),
    ("born", "died"), ("German", "French"), ("3", "4"), ("Atlantic", "Pacific"), ("larger", "smaller"),
]
#: Unrelated words: no evidence either way.
NEUTRAL = [
    ("Paris", "the"), ("is", "has"), ("Lisbon", "beautiful"), ("capital", "was"), ("country", "of"),
    ("euro", "known"), ("million", "Portugal"), ("Spain", "located"), ("1990", "city"), ("largest", "it"),
    ("Europe", "with"), ("born", "which"), ("king", "about"), ("red", "also"), ("population", "and"),
    ("river", "very"), ("Monday", "because"), ("dollar", "there"), ("German", "from"), ("12", "however"),
]

LABELS = ("entail", "contradict", "neutral")


def band_verdicts(cos: np.ndarray, entail_at: float, contradict_at: float) -> np.ndarray:
    """The embedding similarity's rule: ≥ entail_at entail, ≥ contradict_at contradict, else neutral."""
    return np.where(cos >= entail_at, "entail", np.where(cos >= contradict_at, "contradict", "neutral"))


def fit_bands(cos: np.ndarray, labels: np.ndarray) -> tuple[float, float, float]:
    """``(accuracy, entail_at, contradict_at)`` with the best 3-way accuracy on the 0.01 grid."""
    grid = np.round(np.arange(0.10, 1.00, 0.01), 2)
    best = (-1.0, 0.0, 0.0)
    for hi in grid:
        for lo in grid[grid < hi]:
            acc = float((band_verdicts(cos, hi, lo) == labels).mean())
            if acc > best[0] + 1e-12:
                best = (acc, float(hi), float(lo))
    return best


def main() -> None:
    from tokentrust.stats.embedding import EmbeddingSimilarity

    sim = EmbeddingSimilarity()
    pairs = [*ENTAIL, *CONTRADICT, *NEUTRAL]
    labels = np.array(["entail"] * len(ENTAIL) + ["contradict"] * len(CONTRADICT) + ["neutral"] * len(NEUTRAL))
    cos = sim.pairs([a for a, _ in pairs], [b for _, b in pairs])
    for lab in LABELS:
        print(f"{lab:>10}: cosine {np.round(np.sort(cos[labels == lab]), 2).tolist()}")
    acc, hi, lo = fit_bands(cos, labels)
    print(f"best bands: entail ≥ {hi:.2f}, contradict ≥ {lo:.2f}: 3-way accuracy {acc:.2f} on {len(pairs)} pairs")
    pred = band_verdicts(cos, sim.entail_at, sim.contradict_at)
    print(f"shipped bands ({sim.entail_at}, {sim.contradict_at}): accuracy {(pred == labels).mean():.2f}")
    for lab in LABELS:
        row = [int(((labels == lab) & (pred == p)).sum()) for p in LABELS]
        print(f"  true {lab:>10} → predicted entail/contradict/neutral: {row}")


if __name__ == "__main__":
    main()
