"""LIBSVM files: parsing, label remapping, seeded split and standardization, missing file."""

from __future__ import annotations

import pytest
import torch

from byzbench import ConfigError

from .helpers import gen

LIBSVM_TRAIN = """+1 1:0.5 3:1
-1 2:2.0
+1 1:1.5 2:-1 3:0.25
-1 3:4
+1 1:1
-1 2:1
+1 1:2
-1 2:3
+1 1:3
-1 2:5
"""


def test_libsvm_parses_and_remaps_labels(tmp_path):
    from byzbench.data.libsvm import build

    (tmp_path / "a.txt").write_text(LIBSVM_TRAIN)
    (tmp_path / "a.t").write_text("-1 1:7\n+1 4:2\n")  # test has a 4th feature
    d = build(gen(), path=str(tmp_path / "a.txt"), test_path=str(tmp_path / "a.t"))
    # Labels -1/+1 -> 0/1 (sorted order); feature count widened to the test file's 4.
    assert d.num_classes == 2 and d.input_shape == (4,)
    assert d.y_train.tolist() == [1, 0, 1, 0, 1, 0, 1, 0, 1, 0] and d.y_test.tolist() == [0, 1]
    assert d.x_train[2].tolist() == [1.5, -1.0, 0.25, 0.0]
    assert d.x_test.tolist() == [[7.0, 0, 0, 0], [0, 0, 0, 2.0]]
    assert d.x_train.dtype == torch.float32 and d.name == "a"


def test_libsvm_seeded_split_and_standardize(tmp_path):
    from byzbench.data.libsvm import build

    (tmp_path / "a.txt").write_text(LIBSVM_TRAIN)
    d = build(gen(), path=str(tmp_path / "a.txt"), test_frac=0.2, standardize=True)
    # 5 samples per class, round(0.2 * 5) = 1 of each held out.
    assert len(d.y_test) == 2 and sorted(d.y_test.tolist()) == [0, 1]
    assert d.x_train.mean(0).abs().max() < 1e-6
    r = build(gen(), path=str(tmp_path / "a.txt"), task="regression")
    assert r.task == "regression" and r.num_classes == 1 and r.y_train.dtype == torch.float32
    assert set(r.y_train.tolist()) <= {-1.0, 1.0}


def test_libsvm_missing_file_one_line(tmp_path):
    from byzbench.data.libsvm import build

    with pytest.raises(ConfigError, match="dataset.path") as e:
        build(gen(), path=str(tmp_path / "nope"))
    assert "\n" not in str(e.value) and str(tmp_path / "nope") in str(e.value)
