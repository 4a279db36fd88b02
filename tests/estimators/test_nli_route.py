"""The ``nli:<path>`` route end to end on a real (randomly initialised, tiny) BERT NLI classifier saved to disk.

No trained NLI model is available offline, so the verdicts are arbitrary; what is tested is the plumbing the
paper's judge goes through: labels read from the model's ``id2label`` (here in MNLI's order, contradiction
first), both directions classified and combined, CCP and verification computed from them, compared with a
direct transformers computation.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import tokentrust as tt
from tokentrust.estimators.claim import ccp_from
from tokentrust.stats.claims import strip_token
from tokentrust.stats.similarity import combine_verdicts

WORDS = ["the", "capital", "of", "portugal", "is", "lisbon", "porto", "madrid", "city", "its", "europe", "country", "it", "uses", "euro", "largest", "and", "a", "in", "on", ".", ",", "!", "uses", "has"]


@pytest.fixture(scope="module")
def nli_path(tmp_path_factory):
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    path = tmp_path_factory.mktemp("tiny-nli")
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *dict.fromkeys(WORDS)])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                                   cls_token="[CLS]", sep_token="[SEP]", do_lower_case=True)
    labels = {0: "CONTRADICTION", 1: "NEUTRAL", 2: "ENTAILMENT"}
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, num_labels=3, id2label=labels, label2id={v: k for k, v in labels.items()},
                        initializer_range=1.0)  # large random weights: the logits differ from pair to pair
    torch.manual_seed(0)
    model = BertForSequenceClassification(config)
    model.save_pretrained(path)
    fast.save_pretrained(path)
    return str(path)


def _direct_verdicts(path: str, a: list[str], b: list[str]) -> list[str]:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    names = {0: "contradict", 1: "neutral", 2: "entail"}

    def labels(p: list[str], h: list[str]) -> list[str]:
        with torch.no_grad():
            logits = model(**tok(p, h, return_tensors="pt", padding=True)).logits
        return [names[int(i)] for i in logits.argmax(-1)]

    return [combine_verdicts(f, r) for f, r in zip(labels(a, b), labels(b, a), strict=True)]


def test_token_ccp_with_an_nli_model_equals_a_direct_computation(nli_path, backend):
    trace = backend.score("Tell me about Portugal.", "Its capital is Lisbon, and it uses the euro.")
    spec = f"token_ccp:similarity=nli:{nli_path}"
    got = tt.annotate(trace, [spec], with_token_forms=False)[spec]
    expected, seen = [], set()
    for i in range(len(trace)):
        if trace.special[i]:
            expected.append(1.0)
            continue
        w0 = strip_token(trace.tokens[i])
        others = [(t, lp) for tid, t, lp in zip(trace.top_ids[i], trace.top_tokens[i], trace.top_logprobs[i],
                                                 strict=True) if tid != trace.token_ids[i]][: trace.top_k - 1]
        words = [strip_token(t) for t, _ in others]
        asked = [(w0, w) for w in words if w0 and w and w != w0]
        direct = dict(zip(asked, _direct_verdicts(nli_path, [p[0] for p in asked], [p[1] for p in asked]),
                          strict=True)) if asked else {}
        seen |= set(direct.values())
        verdicts = ["entail"] + [direct.get((w0, w), "entail" if w and w == w0 else "neutral") for w in words]
        expected.append(ccp_from([trace.logprobs[i], *(lp for _, lp in others)], verdicts))
    assert got.values == pytest.approx(expected)
    assert len(seen) >= 2  # the random classifier gives more than one label, so the label ids matter


def test_verify_with_an_nli_model_runs_on_the_model_labels(nli_path, backend):
    from tokentrust.verify import verify

    reference = "The capital of Portugal is Lisbon. Portugal uses the euro. Portugal is in Europe."
    trace = backend.score("Tell me about Portugal.", "Its capital is Porto. It uses the euro.")
    result = verify(trace, reference, judge=f"nli:{nli_path}")
    assert result.judge == f"nli:{nli_path}"
    assert [c.claim.text for c in result.checks] == ["Its capital is Porto", "It uses the euro"]
    for check in result.checks:
        assert check.verdict in ("supported", "contradicted", "not_mentioned")
        assert 0.0 <= check.support <= 1.0 and not math.isnan(check.grounded)
        if check.evidence_span is not None:
            assert reference[slice(*check.evidence_span)] == check.evidence
    assert np.isfinite([c.support for c in result.checks]).all()
