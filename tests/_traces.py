"""Hand-built traces for estimator tests (no model needed)."""

from __future__ import annotations

import math

from tokentrust import Trace


def make_trace(
    logprobs, entropy=None, *, special=None, kurtosis=None, margin=None, text_tokens=None, prompt="q?"
) -> Trace:
    """A trace with the given chosen-token log-probs; white-box columns only when ``entropy`` is given."""
    n = len(logprobs)
    tokens = text_tokens or [f"t{i} " for i in range(n)]
    offsets, pos = [], 0
    for tok in tokens:
        offsets.append((pos, pos + len(tok)))
        pos += len(tok)
    return Trace(
        model_id="hand",
        prompt=prompt,
        prompt_text=prompt,
        text="".join(tokens),
        token_ids=list(range(10, 10 + n)),
        tokens=tokens,
        offsets=offsets,
        logprobs=list(logprobs),
        special=special or [False] * n,
        top_k=1,
        top_ids=[[10 + i] for i in range(n)],
        top_tokens=[[t] for t in tokens],
        top_logprobs=[[lp] for lp in logprobs],
        entropy=list(entropy) if entropy is not None else None,
        max_prob=[math.exp(lp) for lp in logprobs] if entropy is not None else None,
        margin=list(margin) if margin is not None else ([0.5] * n if entropy is not None else None),
        rank=[1] * n if entropy is not None else None,
        kurtosis=list(kurtosis) if kurtosis is not None else ([1.0] * n if entropy is not None else None),
    )
