"""Compiled sampling of continuations from a causal LM, in `keras.ops`.

One `ops.while_loop` over positions (compiled with the step that calls
it, on every backend): a keras-hub `CausalLM` decodes one token per
iteration from its key/value cache (`call_with_cache`); any other model
that takes `{"token_ids", "padding_mask"}` and returns `(batch, steps,
vocab)` logits is run on the whole window each iteration.

Sampling is by inverse CDF against uniforms drawn once per batch, so one
seed gives one set of continuations on every backend, and the loop itself
draws nothing (no seed state changes inside it). `temperature=0` is greedy:
the same tokens as keras-hub's `GreedySampler`.

Example:

```python
sequences = keras_kd.lm.sample_continuations(
    student, {"token_ids": ids, "padding_mask": prompt_mask},
    max_new_tokens=16, temperature=1.0, seed=0)
sequences["response_mask"]  # True where the student wrote a token
```
"""

import keras
from keras import ops

from keras_kd.utils import compat
from keras_kd.utils.validation import check_non_negative

TOKEN_IDS = "token_ids"
PADDING_MASK = "padding_mask"
RESPONSE_MASK = "response_mask"


def check_max_new_tokens(max_new_tokens):
    if (isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens,
                                                           int)
            or max_new_tokens < 1):
        raise ValueError("Argument `max_new_tokens` must be a positive "
                         f"integer. Received: max_new_tokens="
                         f"{max_new_tokens!r}")
    return max_new_tokens


def check_sequences(sequences, argument, keys=(TOKEN_IDS, PADDING_MASK)):
    """A dict of `(batch, steps)` arrays with `keys`; a clear error
    otherwise."""
    if not isinstance(sequences, dict) or not set(keys) <= set(sequences):
        found = (sorted(sequences) if isinstance(sequences, dict)
                 else type(sequences).__name__)
        raise ValueError(
            f"Argument `{argument}` must be a dict with keys {list(keys)} "
            f"of (batch, steps) arrays. Received: {found}")
    for key in keys:
        if len(sequences[key].shape) != 2:
            raise ValueError(
                f"`{argument}[{key!r}]` must have shape (batch, steps). "
                f"Received shape {tuple(sequences[key].shape)}")
    return sequences


def generation_mask(prompt_mask, max_new_tokens):
    """True where a row's continuation goes: the `max_new_tokens` positions
    after its prompt (`prompt_mask`, right-padded), inside the window."""
    prompt_mask = ops.cast(prompt_mask, "bool")
    lengths = ops.sum(ops.cast(prompt_mask, "int32"), axis=1, keepdims=True)
    positions = ops.expand_dims(
        ops.arange(ops.shape(prompt_mask)[1], dtype="int32"), 0)
    return ops.logical_and(ops.logical_not(prompt_mask),
                           positions < lengths + max_new_tokens)


def _next_logits(model, cache_ready):
    """`step(token_ids, cache, index)` → the logits `(batch, vocab)` at
    position `index − 1`, and the updated cache."""
    if cache_ready:
        def step(token_ids, cache, index):
            batch = ops.shape(token_ids)[0]
            token = ops.slice(token_ids, [0, index - 1], [batch, 1])
            logits, _, cache = model.call_with_cache(token, cache, index - 1)
            return ops.squeeze(logits, 1), cache
        return step

    def step(token_ids, cache, index):
        logits = model({TOKEN_IDS: token_ids,
                        PADDING_MASK: ops.ones_like(token_ids, "bool")},
                       training=False)
        return ops.take(logits, index - 1, axis=1), cache
    return step


def _choose(logits, temperature, uniform):
    """Greedy at `temperature == 0`, else the inverse CDF of
    `softmax(logits / temperature)` at `uniform` (`(batch,)`)."""
    logits = ops.cast(logits, "float32")
    if temperature == 0:
        return ops.cast(ops.argmax(logits, axis=-1), "int32")
    cdf = ops.cumsum(ops.softmax(logits / temperature, axis=-1), axis=-1)
    below = ops.sum(ops.cast(cdf < ops.expand_dims(uniform, -1), "int32"),
                    axis=-1)
    return ops.minimum(below, ops.shape(logits)[-1] - 1)


def sample_continuations(model, prompts, max_new_tokens, temperature=1.0,
                         seed=None, stop_token_ids=None):
    """Continues each prompt by up to `max_new_tokens` sampled tokens.

    Args:
        model: a keras-hub `CausalLM` (`preprocessor=None`), or a model
            that maps `{"token_ids", "padding_mask"}` to `(batch, steps,
            vocab)` logits. Always run in inference mode.
        prompts: `{"token_ids", "padding_mask"}` of shape `(batch, steps)`;
            `padding_mask` marks each (right-padded, non-empty) prompt, and
            the window `steps` bounds what fits after it.
        max_new_tokens: positions written after each prompt.
        temperature: sampling temperature; 0 is greedy.
        seed: an int or a `keras.random.SeedGenerator` (draws once).
        stop_token_ids: token ids that end a continuation (kept; what
            follows is padding).

    Returns:
        `{"token_ids", "padding_mask", "response_mask"}`: the prompts with
        their continuations, the valid tokens, and the generated ones.
    """
    check_sequences(prompts, "prompts")
    check_max_new_tokens(max_new_tokens)
    temperature = check_non_negative("temperature", temperature)
    uniform = keras.random.uniform(ops.shape(prompts[TOKEN_IDS]), seed=seed)
    return continue_prompts(model, prompts[TOKEN_IDS], prompts[PADDING_MASK],
                            max_new_tokens, temperature, uniform,
                            stop_token_ids)


def continue_prompts(model, token_ids, prompt_mask, max_new_tokens,
                     temperature, uniform, stop_token_ids=None):
    """`sample_continuations` with its uniforms `(batch, steps)` given, so
    that it draws nothing (safe inside `ops.cond` and traced loops)."""
    token_ids = ops.cast(token_ids, "int32")
    prompt_mask = ops.cast(prompt_mask, "bool")
    write = generation_mask(prompt_mask, max_new_tokens)
    lengths = ops.sum(ops.cast(prompt_mask, "int32"), axis=1)
    steps = ops.shape(token_ids)[1]
    start = ops.maximum(ops.min(lengths), 1)
    end = ops.minimum(ops.max(lengths) + max_new_tokens, steps)

    with compat.inference_call_context():
        seeded = compat.causal_lm_cache(model, token_ids)
        cache = ops.zeros(()) if seeded is None else seeded[1]
        step = _next_logits(model, seeded is not None)

        def body(index, token_ids, cache):
            logits, cache = step(token_ids, cache, index)
            chosen = _choose(logits, temperature,
                             ops.take(uniform, index, axis=1))
            column = ops.where(ops.take(write, index, axis=1), chosen,
                               ops.take(token_ids, index, axis=1))
            token_ids = ops.slice_update(token_ids, [0, index],
                                         ops.expand_dims(column, 1))
            return index + 1, token_ids, cache

        _, token_ids, _ = ops.while_loop(
            lambda index, *_: index < end, body, (start, token_ids, cache))

    response = write
    if stop_token_ids:
        stops = ops.logical_and(write, ops.any(ops.equal(
            ops.expand_dims(token_ids, -1),
            ops.convert_to_tensor(list(stop_token_ids), "int32")), axis=-1))
        stops = ops.cast(stops, "int32")
        after = ops.cumsum(stops, axis=1) - stops  # past the first stop
        response = ops.logical_and(write, after == 0)
    token_ids = ops.where(ops.logical_or(prompt_mask, response), token_ids,
                          ops.zeros_like(token_ids))
    return {TOKEN_IDS: token_ids,
            PADDING_MASK: ops.logical_or(prompt_mask, response),
            RESPONSE_MASK: response}
