"""The demo (``python -m approxmat demo``) on scikit-learn's sample photographs.

Runs at a reduced size (a few thousand rows, two levels) so the suite stays fast;
the full-size demo is what CI runs from the README.
"""

import argparse
import builtins
import json

import numpy as np
import pytest

import matplotlib  # noqa: F401 - the test extra installs what the demo's options need
import PIL  # noqa: F401
import sklearn  # noqa: F401

from approxmat import _demo

SMALL = [
    "--repeat", "2", "--calibration-rows", "1500", "--test-rows", "3000",
    "--new-rows", "4000", "--codebooks", "4,16",
]


def _table_rows(out):
    """Rows of the printed table of points: [kind, size, KiB, errors..., speedup]."""
    rows = []
    for line in out.splitlines():
        fields = line.split()
        if len(fields) == 9 and fields[0] in ("lut", "lowrank") and fields[1].isdigit():
            rows.append([fields[0], int(fields[1])] + [float(v) for v in fields[2:]])
    return rows


def _budget_rows(out):
    """Rows of the printed table of budgets: [budget, chosen, err, ms, speedup, chosen-1]."""
    rows, inside = [], False
    for line in out.splitlines():
        if line.split()[:1] == ["budget"]:
            inside = True
            continue
        if inside:
            if not line.strip():
                break
            rows.append(line.split())
    return rows


def _parser():
    return _demo.add_arguments(argparse.ArgumentParser())


def test_problem_is_real_patches_and_a_pca_filter_bank():
    p = _demo.load_patch_problem(calibration_rows=500, test_rows=700, new_rows=900,
                                 ncomponents=16, seed=1)
    assert p.names == ("china.jpg", "flower.jpg")
    assert p.X_cal.shape == (500, 192) and p.X_test.shape == (700, 192)
    assert p.X_new.shape == (900, 192)
    for X in (p.X_cal, p.X_test, p.X_new):
        assert X.dtype == np.float32 and X.flags.c_contiguous
        assert 0 <= X.min() and X.max() <= 1 and X.std() > 0.05  # pixels, not noise-free
    # The filter bank has orthonormal columns (principal directions).
    assert p.weights.shape == (192, 16) and p.weights.dtype == np.float32
    np.testing.assert_allclose(p.weights.T @ p.weights, np.eye(16), atol=1e-5)
    # Calibration and test rows are disjoint patches (no row of one is in the other).
    cal = {row.tobytes() for row in p.X_cal}
    assert sum(row.tobytes() in cal for row in p.X_test) <= 5  # only exact duplicates


def test_full_size_problem_has_enough_rows_to_time():
    p = _demo.load_patch_problem()
    assert p.X_new.shape == ((427 - 7) * (640 - 7), 192)  # every stride-1 patch


def test_demo_prints_sane_table(capsys):
    args = _parser().parse_args(SMALL)
    assert _demo.run_from_args(args) == 0
    out = capsys.readouterr().out
    assert "china.jpg" in out and "flower.jpg" in out and "D=192" in out
    assert "kernel variant:" in out and "kernel threads:" in out
    rows = _table_rows(out)
    assert [r[:2] for r in rows] == [["lut", 4], ["lut", 16]], out
    for kind, ncodebooks, kib, val_err, test_err, new_err, ms, numpy_ms, speedup in rows:
        assert kib == ncodebooks * 16 * 64 / 1024
        assert 0 < val_err < 1 and 0 < test_err < 1 and 0 < new_err < 1.5
        # Unseen patches of the same photo: close to what fit validated.
        assert test_err < 1.5 * val_err + 0.02
        assert ms > 0 and numpy_ms > 0
        assert speedup == pytest.approx(numpy_ms / ms, rel=0.05, abs=0.01)
    # More codebooks: lower error on the same photo.
    assert rows[1][4] < rows[0][4]
    budgets = _budget_rows(out)
    assert [b[0] for b in budgets] == ["0.02", "0.05", "0.1", "0.2", "0.3"], out
    val_errs = {f"lut {r[1]}": r[3] for r in rows}
    for b in budgets:
        chosen = b[1] if b[1] == "exact" else f"{b[1]} {b[2]}"
        assert chosen == "exact" or val_errs[chosen] <= float(b[0])


def test_demo_with_both_kinds(capsys):
    args = _parser().parse_args(SMALL[:-2] + ["--codebooks", "8", "--ranks", "4,16"])
    assert _demo.run_from_args(args) == 0
    rows = _table_rows(capsys.readouterr().out)
    assert [r[:2] for r in rows] == [["lut", 8], ["lowrank", 4], ["lowrank", 16]]
    assert rows[2][2] == (192 * 16 + 16 * 64) * 4 / 1024  # float32 factor bytes
    assert rows[2][4] < rows[1][4]  # higher rank, lower error


def test_json_and_plot_outputs(tmp_path, capsys):
    png, js = tmp_path / "speed.png", tmp_path / "run.json"
    args = _parser().parse_args(SMALL + ["--plot", str(png), "--json", str(js), "--threads", "1"])
    assert _demo.run_from_args(args) == 0
    out = capsys.readouterr().out
    assert "kernel threads: 1" in out and "NumPy BLAS threads: 1" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    facts = json.loads(js.read_text())
    assert facts["shape"] == {"N": 4000, "D": 192, "M": 64}
    assert facts["kernel_threads"] == 1
    assert facts["command"].startswith("python -m approxmat demo ")
    assert "--threads 1" in facts["command"] and "--codebooks 4,16" in facts["command"]
    assert [lv["ncodebooks"] for lv in facts["levels"]] == [4, 16]
    assert all(lv["seconds"] > 0 for lv in facts["levels"])
    assert [b["tolerance"] for b in facts["budgets"]] == [0.02, 0.05, 0.1, 0.2, 0.3]
    assert all(b["seconds"] > 0 and b["chosen"] for b in facts["budgets"])


def test_missing_scikit_learn_gives_install_hint(monkeypatch, capsys):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.startswith("sklearn"):
            raise ImportError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    assert _demo.run_demo(repeat=1) == 2
    err = capsys.readouterr().err
    assert "scikit-learn is not installed" in err and "approxmat[demo]" in err


def test_missing_pillow_gives_install_hint(monkeypatch, capsys):
    import sklearn.datasets

    def no_pillow():
        raise ImportError("The Python Imaging Library (PIL) is required to load data "
                          "from jpeg files.")

    monkeypatch.setattr(sklearn.datasets, "load_sample_images", no_pillow)
    assert _demo.run_demo(repeat=1) == 2
    err = capsys.readouterr().err
    assert "Pillow is not installed" in err and "pip install" in err


def test_plot_without_matplotlib_fails_before_any_work(monkeypatch, capsys, tmp_path):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.startswith("matplotlib") or name.startswith("sklearn"):
            raise ImportError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    assert _demo.run_demo(repeat=1, plot=tmp_path / "x.png") == 2
    err = capsys.readouterr().err
    assert "--plot needs matplotlib" in err
    assert "scikit-learn" not in err  # stopped before loading data


@pytest.mark.parametrize("bad", [["--codebooks", "8,x"], ["--codebooks", ","]])
def test_bad_codebook_lists_are_usage_errors(bad, capsys):
    with pytest.raises(SystemExit) as info:
        _parser().parse_args(bad)
    assert info.value.code == 2
    assert "--codebooks" in capsys.readouterr().err


def test_bad_sizes_raise_clear_errors():
    with pytest.raises(ValueError, match="calibration_rows \\+ test_rows"):
        _demo.load_patch_problem(calibration_rows=200_000, test_rows=100_000)
    with pytest.raises(ValueError, match="ncomponents"):
        _demo.load_patch_problem(ncomponents=500)
    with pytest.raises(ValueError, match="repeat"):
        _demo.run_demo(repeat=0)
