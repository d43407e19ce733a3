"""The text recipe's augmentation: token masking and n-gram sampling."""

import numpy as np
import tensorflow as tf

from keras_kd_examples import text_job


def test_augment_masks_tokens_and_cuts_rows_to_contiguous_ngrams():
    rng = np.random.default_rng(0)
    tokens = np.zeros((400, 48), "int32")
    lengths = rng.integers(8, 40, 400)
    for row, length in enumerate(lengths):
        tokens[row, :length] = rng.integers(2, 1000, length)
    seeds = tf.constant([[1, 2], [3, 4], [5, 6], [7, 8]], tf.int64)
    out = np.asarray(text_job.augment(tokens, seeds))
    kept = (out > 0).sum(1)
    cut = kept < lengths
    # About a quarter of the rows become n-grams of 1 to 5 tokens.
    assert 0.15 < cut.mean() < 0.35
    assert kept[cut].min() >= 1 and kept[cut].max() <= 5
    for row in np.flatnonzero(cut)[:20]:
        gram = out[row, :kept[row]]
        original = tokens[row, :lengths[row]]
        starts = [s for s in range(lengths[row] - len(gram) + 1)
                  if np.all((gram == original[s:s + len(gram)])
                            | (gram == text_job.OOV))]
        assert starts, (gram, original)
        assert np.all(out[row, kept[row]:] == 0)
    # The other rows keep their length; about 10% of tokens become OOV.
    whole = ~cut
    assert np.all(kept[whole] == lengths[whole])
    valid = tokens[whole] > 0
    masked = (out[whole] == text_job.OOV) & valid
    assert 0.07 < masked.sum() / valid.sum() < 0.13
    assert np.all(out[whole][~valid] == 0)
    # Seeded: the same seeds give the same views.
    np.testing.assert_array_equal(out, text_job.augment(tokens, seeds))


def test_each_recipe_names_layers_its_models_have():
    """Each student's recipe builds a Distiller on the real teachers and
    student: its pairs name existing layers. The LSTM learns from soft
    targets alone (attention transfer cost it its gain); the transformer
    adds attention maps."""
    import keras_kd

    terms = {}
    for kind, recipe in text_job.RECIPES.items():
        ensemble = [text_job.TEACHERS[name]()
                    for name in text_job.ENSEMBLES[kind]]
        distiller = keras_kd.Distiller(ensemble, text_job.STUDENTS[kind](),
                                       **recipe["distiller"])
        distiller.compile(optimizer="adam", **recipe["compile"])
        terms[kind] = sorted(term.name for term in distiller.terms)
    assert terms == {"lstm": ["distillation"],
                     "transformer": ["attention", "distillation"]}
