import os

import pytest

from keras_kd.utils.io import atomic_path
from keras_kd.utils.io import write_text_atomic


def test_atomic_write_replaces_the_file(tmp_path):
    path = tmp_path / "report.md"
    path.write_text("old")
    write_text_atomic(str(path), "new")
    assert path.read_text() == "new"
    assert os.listdir(tmp_path) == ["report.md"]


def test_failed_write_leaves_nothing_behind(tmp_path):
    path = tmp_path / "model.tflite"
    with pytest.raises(RuntimeError):
        with atomic_path(str(path)) as tmp:
            with open(tmp, "wb") as f:
                f.write(b"half")
            raise RuntimeError("conversion failed")
    assert os.listdir(tmp_path) == []
