"""The Distiller's shorthands: arguments that build or set its terms.

Terms are the Distiller's one configuration surface; everything else is
a shorthand for them, kept here so that neither the Distiller nor the
callbacks know any term class:

- `Distiller(attention_pairs=...)` builds an `AttentionTransferTerm` for
  pairs of feature maps and an `AttentionMapTerm` for pairs of
  `MultiHeadAttention` layers; `hint_pairs=...` a `HintTerm`; a
  `SoftTargetTerm` is there unless `terms` gives one.
- `Distiller.compile(temperature=, attention_weight=, hint_weight=,
  *_loss_fn=)` set the variables and losses of those terms; left out, a
  term keeps what it has.
- Schedulers name `"alpha"`, a compile shorthand, a term's name (its
  weight) or `"term_name.variable"`.

Example:

```python
distiller = keras_kd.Distiller(teacher, student,
                               hint_pairs=[("block3", "block2")])
[t.name for t in distiller.terms]  # ["distillation", "hint"]
distiller.compile(hint_weight=0.5)  # distiller.terms[1].weight == 0.5
```
"""

import keras

from keras_kd.layer_pairs import pairs_to_config
from keras_kd.layer_paths import find_layer
from keras_kd.layer_paths import split_index
from keras_kd.terms.attention_maps import AttentionMapTerm
from keras_kd.terms.attention_transfer import AttentionTransferTerm
from keras_kd.terms.hints import HintTerm
from keras_kd.terms.soft_targets import SoftTargetTerm
from keras_kd.terms.soft_targets import normalized_weights
from keras_kd.utils.validation import check_non_negative
from keras_kd.utils.validation import check_positive
from keras_kd.utils.validation import check_unit_interval

#: compile argument -> (term classes it sets, attribute, value check).
COMPILE_SHORTHANDS = {
    "temperature": ((SoftTargetTerm,), "temperature", check_positive),
    "attention_weight": ((AttentionTransferTerm, AttentionMapTerm),
                         "weight", check_non_negative),
    "hint_weight": ((HintTerm,), "weight", check_non_negative),
    "distillation_loss_fn": ((SoftTargetTerm,), "loss_fn", None),
    "attention_loss_fn": ((AttentionTransferTerm,), "loss_fn", None),
    "attention_map_loss_fn": ((AttentionMapTerm,), "loss_fn", None),
    "hint_loss_fn": ((HintTerm,), "loss_fn", None),
}


def attention_term_class(layer):
    """The attention term for a layer: maps of a `MultiHeadAttention`'s
    probabilities, else attention transfer of its feature maps."""
    if isinstance(layer, keras.layers.MultiHeadAttention):
        return AttentionMapTerm
    return AttentionTransferTerm


def _kind(term_class):
    return ("MultiHeadAttention" if term_class is AttentionMapTerm
            else "feature map")


def default_terms(teachers, student, attention_pairs, hint_pairs,
                  teacher_weights, terms):
    """The terms of a Distiller: those its shorthands describe, then
    `terms`.

    Args:
        teachers: the list of teachers.
        student: the student.
        attention_pairs, hint_pairs: parsed `LayerPair` lists.
        teacher_weights: normalised weights of several teachers, or `None`.
        terms: the user's own terms.
    """
    soft = [t for t in terms if isinstance(t, SoftTargetTerm)]
    built = []
    if not soft:
        soft = [SoftTargetTerm(teacher_weights=teacher_weights)]
        built.append(soft[0])
    elif teacher_weights is not None:
        for term in soft:
            if term.teacher_weights not in (None, teacher_weights):
                raise ValueError(
                    f"The soft-target term '{term.name}' has teacher_weights="
                    f"{term.teacher_weights}, but the Distiller received "
                    f"teacher_weights={teacher_weights}. Give them once.")
            term.teacher_weights = normalized_weights(teacher_weights)
    groups = {}
    for pair in attention_pairs:
        kinds = [attention_term_class(find_layer(
            model, split_index(path)[0], side)) for model, path, side in (
                (teachers[pair.teacher_index], pair.teacher_layer,
                 "teacher"),
                (student, pair.student_layer, "student"))]
        if kinds[0] is not kinds[1]:
            raise ValueError(
                "An attention pair must name two MultiHeadAttention layers "
                "or two layers with feature maps, not one of each. "
                f"Received: teacher layer '{pair.teacher_layer}' "
                f"({_kind(kinds[0])}) and student layer "
                f"'{pair.student_layer}' ({_kind(kinds[1])})")
        groups.setdefault(kinds[0], []).append(pair)
    for term_class, pairs in groups.items():
        name = ("attention_map" if term_class is AttentionMapTerm
                and AttentionTransferTerm in groups else "attention")
        built.append(term_class(pairs_to_config(pairs), name=name))
    if hint_pairs:
        built.append(HintTerm(pairs_to_config(hint_pairs), name="hint"))
    return built + list(terms)


def apply_compile(terms, given):
    """Sets what `Distiller.compile`'s shorthands give (`None`: left out).

    Raises:
        ValueError: for a shorthand no term of the Distiller uses, a bad
            value, or a loss whose own temperature contradicts
            `temperature`.
    """
    given = {k: v for k, v in given.items() if v is not None}
    checked = {}
    for argument, value in given.items():
        classes, attribute, check = COMPILE_SHORTHANDS[argument]
        value = check(argument, value) if check else value
        targets = [t for t in terms if isinstance(t, classes)]
        if not targets:
            raise ValueError(
                f"`compile` received {argument}={value!r}, but no term of "
                f"this Distiller uses it (terms: {[t.name for t in terms]}; "
                f"`{argument}` sets {[c.__name__ for c in classes]}).")
        checked[argument] = (targets, attribute, value)
    loss = given.get("distillation_loss_fn")
    own = getattr(loss, "temperature", None)
    if "temperature" in given and isinstance(own, float) and (
            own != checked["temperature"][2]):
        raise ValueError(
            f"The loss given as `distillation_loss_fn` has temperature={own}"
            f", but `compile` received temperature={given['temperature']}. "
            "The soft-target term's temperature governs; make them agree "
            "(or leave `temperature` out).")
    # Losses first: a loss with its own temperature sets the term's.
    for argument, (targets, attribute, value) in sorted(
            checked.items(), key=lambda item: item[1][1] != "loss_fn"):
        for term in targets:
            if attribute == "loss_fn":
                term.set_loss(value, argument)
            else:
                getattr(term, attribute).assign(value)


def resolve_variables(distiller, name):
    """The variables a scheduler's `name` addresses, with their check.

    `"alpha"`; a compile shorthand (`"temperature"`, `"attention_weight"`,
    `"hint_weight"`); a term's name (its weight); `"term.variable"`.

    Raises:
        ValueError: naming the terms, when nothing matches.
    """
    terms = getattr(distiller, "terms", None)
    if not isinstance(terms, list):
        raise ValueError(
            f"Schedules of `{name}` need a keras_kd.Distiller. Received: "
            f"the model '{distiller.name}' of type "
            f"{type(distiller).__name__}, which has no such Distiller "
            "variable or term.")
    if name == "alpha":
        return [distiller.alpha], check_unit_interval
    if name in COMPILE_SHORTHANDS and COMPILE_SHORTHANDS[name][2]:
        classes, attribute, check = COMPILE_SHORTHANDS[name]
        found = [getattr(t, attribute) for t in terms
                 if isinstance(t, classes)]
    else:
        term_name, _, attribute = name.partition(".")
        check = (check_positive if attribute == "temperature"
                 else check_non_negative)
        found = [getattr(t, attribute or "weight", None) for t in terms
                 if t.name == term_name]
        found = [v for v in found if isinstance(v, keras.Variable)]
    if not found:
        raise ValueError(
            f"The Distiller '{distiller.name}' has no such Distiller "
            f"variable or term: no term uses `{name}`. Terms: "
            f"{[t.name for t in terms]}; a "
            "scheduler takes 'alpha', 'temperature', 'attention_weight', "
            "'hint_weight', a term name or 'term_name.variable'.")
    return found, check
