"""Importing tokentrust, reading similarity specs and building estimators load no heavy library: models and
their libraries load on the first comparison."""

import subprocess
import sys

HEAVY = ["torch", "transformers", "sentence_transformers", "rouge_score", "sklearn", "scipy.stats"]


def test_specs_and_estimators_import_nothing_heavy():
    code = (
        "import sys, tokentrust as tt\n"
        "from tokentrust.stats import make_similarity\n"
        "for spec in ['embedding', 'nli:/models/x', 'lexical', 'lexical:jaccard', 'judge']:\n"
        "    make_similarity(spec)\n"
        "    tt.build_estimator(f'semantic_entropy:similarity={spec}').requires\n"
        "for name in tt.list_estimators():\n"
        "    tt.build_estimator(name).uses_models\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]", f"imported too early: {out}"
