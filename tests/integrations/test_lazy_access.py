"""``tt.openai`` and ``tt.integrations.<name>`` load on first use: importing tokentrust imports no framework."""

import subprocess
import sys

FRAMEWORKS = ["openai", "langchain_core", "litellm", "llama_index"]


def test_integrations_load_only_when_used():
    code = (
        "import sys, tokentrust as tt\n"
        f"before = [m for m in {FRAMEWORKS!r} if m in sys.modules]\n"
        "wrap = tt.openai.wrap\n"
        "print(before, wrap.__module__, tt.integrations.openai_sdk is tt.openai, 'langchain_core' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["[]", "tokentrust.integrations.openai_sdk", "True", "False"]
