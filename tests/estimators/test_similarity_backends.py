"""Similarity backends: embedding vs sentence-transformers directly, NLI label mapping on a small local
classifier, lexical, and the judge on recorded replies."""

import numpy as np
import pytest
import torch
from _samples import QUESTION

import tokentrust as tt
from tokentrust.backends.replay import ReplayBackend, text_trace
from tokentrust.stats import SemanticClusters, SimilarityMatrix, resources
from tokentrust.stats.embedding import default_embedding_model
from tokentrust.stats.judge import JUDGE_PROMPT, judge_matrix, parse_yes_no
from tokentrust.stats.nli import NliModel, nli_label_ids
from tokentrust.stats.sampling import AnswerTexts, Samples
from tokentrust.stats.similarity import make_similarity

TEXTS = ["Victor Hugo", "It was Victor Hugo.", "Charles Dickens", "A cat sat on the mat."]


def test_embedding_matches_sentence_transformers_cosine():
    from sentence_transformers import SentenceTransformer

    direct = SentenceTransformer(default_embedding_model(), device="cpu")
    emb = direct.encode(TEXTS, convert_to_numpy=True)
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    expected = np.clip(emb @ emb.T, 0, 1)
    got = make_similarity("embedding").matrix(TEXTS)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert got[0, 1] > got[0, 2] > got[0, 3]  # paraphrase > other author > unrelated
    assert make_similarity("embedding").encoder() is make_similarity("embedding").encoder()  # loaded once per process
    assert any(spec.startswith("embedding:") for spec in resources.loaded())


@pytest.fixture(scope="module")
def tiny_nli(tmp_path_factory):
    """A randomly initialised 3-way classifier with MNLI-style labels (ids as in deberta-large-mnli)."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    path = tmp_path_factory.mktemp("tiny-nli")
    tok = AutoTokenizer.from_pretrained(default_embedding_model())
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=37, num_labels=3,
                        id2label={0: "CONTRADICTION", 1: "NEUTRAL", 2: "ENTAILMENT"},
                        label2id={"CONTRADICTION": 0, "NEUTRAL": 1, "ENTAILMENT": 2})
    BertForSequenceClassification(config).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def test_nli_labels_are_read_from_the_config(tiny_nli):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = NliModel(tiny_nli)
    assert model.label_ids == (2, 1, 0)  # entail, neutral, contradict
    p = model.directional(TEXTS[:3])
    assert p.shape == (3, 3, 3)
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, atol=1e-6)
    np.testing.assert_allclose(p[[0, 1, 2], [0, 1, 2]], [[1, 0, 0]] * 3)
    # independent forward pass: premise 0 → hypothesis 2, columns reordered to (entail, neutral, contradict)
    ref_model = AutoModelForSequenceClassification.from_pretrained(tiny_nli).eval()
    enc = AutoTokenizer.from_pretrained(tiny_nli)(TEXTS[0], TEXTS[2], return_tensors="pt")
    with torch.no_grad():
        ref = torch.softmax(ref_model(**enc).logits, -1)[0].numpy()
    np.testing.assert_allclose(p[0, 2], ref[[2, 1, 0]], atol=1e-5)


def test_nli_similarity_and_clusters_through_stats(tiny_nli):
    b = ReplayBackend.from_texts(QUESTION, "Victor Hugo", TEXTS)
    ctx = tt.Context(b.generate(QUESTION), b)
    texts = AnswerTexts(samples=Samples(n=4))
    w = ctx.get(SimilarityMatrix(texts=texts, similarity=f"nli:{tiny_nli}"))
    assert w.shape == (4, 4) and np.allclose(w, w.T) and np.allclose(np.diag(w), 1)
    for rule in ("strict", "lenient"):
        ids = ctx.get(SemanticClusters(texts=texts, similarity=f"nli:{tiny_nli}", rule=rule))
        assert ids.shape == (4,) and ids[0] == 0 and ids.max() < 4
    s = ctx.get(tt.build_estimator(f"semantic_entropy:n_samples=4,similarity=nli:{tiny_nli}"))
    assert 0 <= s.raw[0] <= np.log(4) + 1e-9


def test_nli_config_without_the_three_labels_is_refused():
    with pytest.raises(tt.TokentrustError, match="lacks neutral, contradict"):
        nli_label_ids({0: "ENTAILMENT", 1: "NOT_ENTAILMENT"}, "binary-model")


def test_bad_similarity_specs_name_the_valid_ones():
    with pytest.raises(tt.UserInputError, match="valid: embedding"):
        tt.build_estimator("eigv:similarity=cosine")
    with pytest.raises(tt.UserInputError, match="nli needs a model|needs a model"):
        tt.build_estimator("eigv:similarity=nli")


def test_judge_reads_yes_and_no_from_recorded_replies():
    texts = ["Victor Hugo", "Hugo", "Dickens"]
    replies = {(0, 1): "Yes.", (0, 2): "No, they differ.", (1, 2): "Maybe"}
    recorded = [text_trace(JUDGE_PROMPT.format(question=QUESTION, a=texts[i], b=texts[j]), r)
                for (i, j), r in replies.items()]
    w = judge_matrix(ReplayBackend(recorded), QUESTION, texts)
    np.testing.assert_allclose(w, [[1, 1, 0], [1, 1, 0.5], [0, 0.5, 1]])
    assert parse_yes_no("yes") == 1.0 and parse_yes_no("No.") == 0.0 and np.isnan(parse_yes_no("I think"))
