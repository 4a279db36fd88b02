"""Calibrators are keyword-only dataclasses: parameters (``get_params``, JSON ``params``) come from their
fields, fitted attributes end in ``_``, they register in ``tokentrust.registry.calibrators``, and scikit-learn
loads only when a fit needs it."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, fields, is_dataclass

import numpy as np
import pytest

from tokentrust import calibration, registry
from tokentrust.calibration import Calibrator, PlattCalibrator, make_calibrator

PARAMS = {
    "temperature": {"score_type": "logit"},
    "platt": {"C": 1e4, "label_smoothing": True},
    "isotonic": {},
    "histogram": {"n_bins": 10},
}
S = np.array([-2.0, -1.0, -0.5, 0.0, 0.3, 0.8, 1.5, 2.5])
Y = np.array([0, 0, 1, 0, 1, 1, 0, 1])


def test_registered_in_the_shared_registry():
    assert calibration.calibrators is registry.calibrators
    assert registry.calibrators.names() == sorted(PARAMS)
    for kind, cls in registry.calibrators.items():
        assert cls.kind == kind and make_calibrator(kind).__class__ is cls


@pytest.mark.parametrize("kind", PARAMS)
def test_get_params_are_the_dataclass_fields(kind):
    cal = make_calibrator(kind)
    assert is_dataclass(cal)
    assert cal.get_params() == {f.name: getattr(cal, f.name) for f in fields(cal)} == PARAMS[kind]
    assert json.loads(cal.to_json())["params"] == PARAMS[kind]
    assert repr(cal) == f"{type(cal).__name__}({', '.join(f'{k}={v!r}' for k, v in PARAMS[kind].items())})"
    with pytest.raises(TypeError):
        type(cal)(1)  # keyword-only


@pytest.mark.parametrize("kind", PARAMS)
def test_fit_sets_only_underscore_attributes_and_keeps_params(kind):
    cal = make_calibrator(kind)
    before = dict(vars(cal))
    cal.fit(S, Y)
    added = set(vars(cal)) - set(before)
    assert added == set(type(cal)._fitted_names) and all(name.endswith("_") for name in added)
    assert cal.get_params() == PARAMS[kind]


def test_non_default_params_round_trip_bit_identical():
    cal = PlattCalibrator(C=3.0, label_smoothing=False).fit(S, Y)
    again = Calibrator.from_json(cal.to_json())
    assert type(again) is PlattCalibrator and again.get_params() == {"C": 3.0, "label_smoothing": False}
    probe = np.linspace(-4, 4, 17)
    np.testing.assert_array_equal(again.transform(probe), cal.transform(probe))


def test_a_new_field_is_a_parameter_without_listing_it():
    @dataclass(kw_only=True, eq=False)
    class Shifted(Calibrator):
        kind = "shifted"
        _fitted_names = ("offset_",)
        shift: float = 0.5

        def fit(self, scores, correct):
            self.offset_ = float(np.mean(correct)) - self.shift
            return self

        def _transform(self, s):
            return np.clip(s * 0 + self.offset_ + self.shift, 0, 1)

    cal = Shifted(shift=0.25).fit(S, Y)
    assert cal.get_params() == {"shift": 0.25}
    assert json.loads(cal.to_json()) == {"kind": "shifted", "version": 1, "params": {"shift": 0.25},
                                         "fitted": {"offset_": 0.5 - 0.25}}


def test_importing_calibration_loads_no_sklearn():
    code = (
        "import sys, tokentrust, tokentrust.calibration as c\n"
        "heavy = ['sklearn', 'scipy.stats', 'scipy.optimize', 'torch']\n"
        "print([m for m in heavy if m in sys.modules])\n"
        "c.PlattCalibrator().fit([0.0, 1.0, 2.0], [0, 1, 1])\n"
        "print('sklearn' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "[]", f"imported at module level: {out[0]}"
    assert out[1] == "True"  # fitting Platt does load it
