"""Sequence-level KD: the teacher's own generations as the training set."""

import os

import keras
import numpy as np

from keras_kd.lm.sampling import PADDING_MASK
from keras_kd.lm.sampling import RESPONSE_MASK
from keras_kd.lm.sampling import TOKEN_IDS
from keras_kd.lm.sampling import check_max_new_tokens
from keras_kd.lm.sampling import check_sequences
from keras_kd.lm.sampling import continue_prompts
from keras_kd.precompute import compiled
from keras_kd.utils.io import atomic_path
from keras_kd.utils.io import check_writable_folder
from keras_kd.utils.validation import check_non_negative


def generate_transfer_set(teacher, prompts, max_new_tokens, temperature=0.0,
                          seed=None, stop_token_ids=None, batch_size=32,
                          path=None, verbose=1):
    """Continues every prompt with `teacher` and returns the sequences.

    The student then learns the teacher's outputs instead of (or beside)
    the references: sequence-level KD (Kim & Rush, "Sequence-Level
    Knowledge Distillation", EMNLP 2016). Generation is one compiled loop
    per batch (`keras_kd.lm.sample_continuations`); greedy at
    `temperature=0` (keras-hub's `GreedySampler`), else sampled, seeded.

    Args:
        teacher: a keras-hub `CausalLM` (`preprocessor=None`) or a model
            mapping `{"token_ids", "padding_mask"}` to `(batch, steps,
            vocab)` logits.
        prompts: `{"token_ids", "padding_mask"}` NumPy arrays `(n, width)`,
            right-padded (each prompt at least one token).
        max_new_tokens: tokens generated after each prompt; the sequences
            are `width + max_new_tokens` wide.
        temperature: sampling temperature, 0 for greedy.
        seed: an int: the same seed gives the same set.
        stop_token_ids: tokens that end a generation (kept).
        batch_size: prompts per compiled call.
        path: optionally, an `.npz` file the sequences are also written to
            (atomically: a temporary file, then rename).
        verbose: 1 shows a progress bar.

    Returns:
        `{"token_ids", "padding_mask", "response_mask"}` NumPy arrays of
        shape `(n, width + max_new_tokens)`; `response_mask` marks the
        teacher's tokens. `keras_kd.lm.next_token_data` turns them into
        `(x, y, sample_weight)` for `Distiller.fit`;
        `keras_kd.lm.OnPolicyDistiller` trains on them as they are.

    Example:

    ```python
    sequences = keras_kd.lm.generate_transfer_set(
        teacher, prompts, max_new_tokens=32, temperature=0.0)
    x, y, weights = keras_kd.lm.next_token_data(sequences)
    distiller.fit(x, y, sample_weight=weights, epochs=3)
    ```
    """
    check_sequences(prompts, "prompts")
    check_max_new_tokens(max_new_tokens)
    temperature = check_non_negative("temperature", temperature)
    if path is not None:
        check_writable_folder(path, "path")
        if not str(path).endswith(".npz"):
            raise ValueError("Argument `path` must name an `.npz` file. "
                             f"Received: path={str(path)!r}")
    ids = np.asarray(prompts[TOKEN_IDS], "int32")
    mask = np.asarray(prompts[PADDING_MASK], bool)
    empty = np.flatnonzero(mask.sum(1) == 0)
    if len(empty):
        raise ValueError("Every prompt needs at least one token. Empty rows "
                         f"of `prompts`: {empty[:10].tolist()}")
    width = ids.shape[1] + max_new_tokens
    ids = np.pad(ids, ((0, 0), (0, max_new_tokens)))
    mask = np.pad(mask, ((0, 0), (0, max_new_tokens)))
    generator = keras.random.SeedGenerator(seed)

    @compiled
    def generate(token_ids, prompt_mask, uniform):
        out = continue_prompts(teacher, token_ids, prompt_mask,
                               max_new_tokens, temperature, uniform,
                               stop_token_ids)
        return out[TOKEN_IDS], out[PADDING_MASK], out[RESPONSE_MASK]

    results = {key: [] for key in (TOKEN_IDS, PADDING_MASK, RESPONSE_MASK)}
    progbar = keras.utils.Progbar(len(ids), verbose=verbose,
                                  unit_name="prompt")
    for start in range(0, len(ids), batch_size):
        rows = slice(start, start + batch_size)
        uniform = keras.random.uniform((len(ids[rows]), width),
                                       seed=generator)
        for key, value in zip(results, generate(ids[rows], mask[rows],
                                                uniform)):
            results[key].append(np.asarray(value))
        progbar.add(len(ids[rows]))
    sequences = {key: np.concatenate(value) for key, value in
                 results.items()}
    if path is not None:
        with atomic_path(os.fspath(path)) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **sequences)
    return sequences
