"""``poetml generate --validate``: figures against references, pass / FAIL / skip."""

from __future__ import annotations

import pytest

pytest.importorskip("pythia8mc")
pytest.importorskip("fastjet")

from poetml.generate.checks import Check, format_checks, run_checks


def test_missing_real_data_is_a_skip_never_a_pass(tmp_path):
    checks = run_checks(
        tmp_path / "v", shared=tmp_path / "nothing-here", scale=0.1, only=("z",), progress=False
    )
    assert [c.status for c in checks] == ["skip"]
    assert "real 2010 file absent" in checks[0].note
    text = format_checks(checks)
    assert text.splitlines()[-1] == "0 passed, 0 failed, 1 skipped"


def test_minimum_bias_cross_section_against_totem(tmp_path):
    (c,) = run_checks(tmp_path, scale=0.25, only=("minbias",), progress=False)
    assert c.status == "pass", c
    assert 70 < c.value < 90  # mb


def test_unknown_group_and_failure_exit_code(tmp_path, monkeypatch, capsys):
    with pytest.raises(ValueError, match="unknown validation groups"):
        run_checks(tmp_path, only=("nope",), progress=False)
    from poetml.cli import main
    from poetml.generate import checks

    failing = Check("x", "a figure", 1.0, "ref", "tol", "FAIL")
    monkeypatch.setattr(checks, "run_checks", lambda *a, **k: [failing])
    assert main(["generate", "--validate", str(tmp_path), "--quiet"]) == 1
    assert "0 passed, 1 failed, 0 skipped" in capsys.readouterr().out
