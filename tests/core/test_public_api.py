import tokentrust


def test_all_is_exactly_the_public_surface():
    public = {n for n in dir(tokentrust) if not n.startswith("_")}
    modules = {n for n in public if type(getattr(tokentrust, n)).__name__ == "module"}
    assert set(tokentrust.__all__) == (public - modules) | {"__version__"}
    for name in tokentrust.__all__:
        assert hasattr(tokentrust, name)


HEAVY = ("torch", "transformers", "sklearn", "scipy", "pandas", "plotly", "sentence_transformers", "fastapi")


def _imported_heavy(code: str) -> list[str]:
    import subprocess
    import sys

    probe = f"{code}\nimport sys\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return out.split()


def test_importing_tokentrust_imports_no_heavy_library():
    assert _imported_heavy("import tokentrust") == []


def test_cli_help_and_version_import_no_heavy_library():
    for argv in (["--help"], ["--version"], ["bench", "--help"], ["serve", "--help"]):
        code = ("import contextlib, io\nfrom tokentrust.cli import app\n"
                f"with contextlib.redirect_stdout(io.StringIO()):\n    try:\n        app({argv!r})\n"
                "    except SystemExit:\n        pass")
        assert _imported_heavy(code) == [], argv


def test_version_comes_from_the_installed_package():
    import subprocess
    import sys
    from importlib.metadata import version

    assert tokentrust.__version__ == version("tokentrust")
    out = subprocess.run([sys.executable, "-m", "tokentrust", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"tokentrust {version('tokentrust')}"


def test_registries_are_complete_after_import():
    from tokentrust import registry

    assert {"default", "hf", "openai", "replay"} <= set(registry.backends.names())
    assert {"embedding", "nli", "lexical", "judge"} <= set(registry.similarities.names())
    assert {"platt", "isotonic", "temperature", "histogram"} <= set(registry.calibrators.names())
    assert "capitals" in registry.datasets and "roc_auc" in registry.metrics and "msp" in registry.estimators
    assert tokentrust.estimators.__name__ == "tokentrust.estimators"  # the subpackage, not shadowed
