import tokentrust


def test_all_is_exactly_the_public_surface():
    public = {n for n in dir(tokentrust) if not n.startswith("_")}
    modules = {n for n in public if type(getattr(tokentrust, n)).__name__ == "module"}
    assert set(tokentrust.__all__) == (public - modules) | {"__version__"}
    for name in tokentrust.__all__:
        assert hasattr(tokentrust, name)


def test_importing_core_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, tokentrust; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
