"""Confidence Level, Critique Score and the identity Acc_2 = Acc_1·CL + (1−Acc_1)·CS."""

from __future__ import annotations

import json
import math

import pytest

from _cli import run_cli
from tokentrust.decoding.selfcorrect import ItemRevisions, metrics


def test_cl_cs_identity_on_fixed_counts():
    items = [
        ItemRevisions("a", ((True, True), (True, False), (False, True), (False, False))),  # P(a)=.5
        ItemRevisions("b", ((True, True), (True, True), (True, True), (False, False))),  # P(a)=.75
        ItemRevisions("c", ((False, True), (False, False), (False, False), (False, False))),  # P(a)=0
    ]
    m = metrics(items)
    cl = (0.5 * 0.5 + 0.75 * 1.0 + 0.0) / (0.5 + 0.75 + 0.0)
    cs = (0.5 * 0.5 + 0.25 * 0.0 + 1.0 * 0.25) / (0.5 + 0.25 + 1.0)
    acc1, acc2 = (0.5 + 0.75 + 0.0) / 3, (0.5 + 0.75 + 0.25) / 3
    assert m["confidence_level"] == pytest.approx(cl) and m["critique_score"] == pytest.approx(cs)
    assert (m["acc_1"], m["acc_2"]) == (pytest.approx(acc1), pytest.approx(acc2))
    assert acc1 * cl + (1 - acc1) * cs == pytest.approx(acc2)
    assert abs(m["identity_gap"]) < 1e-12
    assert m["revise"] == float(cs > 1 - cl)
    all_wrong = metrics([ItemRevisions("d", ((False, True), (False, False)))])
    assert math.isnan(all_wrong["confidence_level"]) and all_wrong["critique_score"] == 0.5


def test_selfcorrect_command(capsys):
    code, out, err = run_cli(capsys, "selfcorrect", "--dataset", "arithmetic", "--limit", "2", "--samples", "2",
                             "-n", "8", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert len(result["items"]) == 2 and all(len(i["pairs"]) == 2 for i in result["items"])
    pairs = [tuple(p) for i in result["items"] for p in i["pairs"]]
    assert result["metrics"]["acc_1"] == pytest.approx(sum(a for a, _ in pairs) / 4)
    assert result["metrics"]["acc_2"] == pytest.approx(sum(b for _, b in pairs) / 4)
    assert abs(result["metrics"]["identity_gap"]) < 1e-12
    code, _, err = run_cli(capsys, "selfcorrect", "--dataset", "arithmetic", "--samples", "0")
    assert code == 2 and "--samples" in err and len(err.strip().splitlines()) == 1
    # the same loop through bench, with selfcorrect's defaults for what bench does not set (4 samples)
    code, out, err = run_cli(capsys, "bench", "--dataset", "arithmetic", "--limit", "1", "-n", "8", "--self-correct",
                             "--json")
    assert code == 0, err
    result = json.loads(out)
    assert len(result["items"]) == 1 and len(result["items"][0]["pairs"]) == 4
    assert abs(result["metrics"]["identity_gap"]) < 1e-12
