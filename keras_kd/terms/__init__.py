"""Distillation terms: each a weighted loss between tapped layers.

The Distiller sums its terms (see `Term` for the contract); write your own
by subclassing `Term`. Terms are named the Keras way:
`keras_kd.terms.get("pkt")` is the `PKT` class, `serialize(term)` and
`deserialize(config)` round-trip an instance.

Example:

```python
term = keras_kd.terms.get("rkd")("pool", "pool")
same = keras_kd.terms.deserialize(keras_kd.terms.serialize(term))
```
"""

import keras

from keras_kd.terms.attention_maps import AttentionMapTerm
from keras_kd.terms.attention_transfer import AttentionTransferTerm
from keras_kd.terms.correlation_congruence import CorrelationCongruence
from keras_kd.terms.crd import CRD
from keras_kd.terms.dist import DIST
from keras_kd.terms.dkd import DKD
from keras_kd.terms.feature_relation import FeatureRelationTerm
from keras_kd.terms.fsp import FSP
from keras_kd.terms.hints import HintTerm
from keras_kd.terms.layer_pair_term import LayerPairTerm
from keras_kd.terms.logit_standardization import LogitStandardization
from keras_kd.terms.logit_term import LogitTerm
from keras_kd.terms.loss_term import LossTerm
from keras_kd.terms.pair_term import PairTerm
from keras_kd.terms.pkt import PKT
from keras_kd.terms.rkd import RKD
from keras_kd.terms.similarity_preserving import SimilarityPreserving
from keras_kd.terms.soft_targets import SoftTargetTerm
from keras_kd.terms.srd import SRD
from keras_kd.terms.term import TapValues
from keras_kd.terms.term import Term
from keras_kd.terms.vid import VID

# Every term a user can name, by its class name and a snake-case alias.
ALL_OBJECTS = {
    AttentionMapTerm, AttentionTransferTerm, CorrelationCongruence, CRD, DIST,
    DKD, FSP, HintTerm, LogitStandardization, PKT, RKD,
    SimilarityPreserving, SoftTargetTerm, SRD, VID,
}
ALIASES = {
    "attention_maps": AttentionMapTerm,
    "attention_transfer": AttentionTransferTerm,
    "correlation_congruence": CorrelationCongruence,
    "crd": CRD,
    "dist": DIST,
    "dkd": DKD,
    "fsp": FSP,
    "hints": HintTerm,
    "logit_standardization": LogitStandardization,
    "pkt": PKT,
    "rkd": RKD,
    "similarity_preserving": SimilarityPreserving,
    "soft_targets": SoftTargetTerm,
    "srd": SRD,
    "vid": VID,
}
ALL_OBJECTS_DICT = {cls.__name__: cls for cls in ALL_OBJECTS}
ALL_OBJECTS_DICT.update(ALIASES)


def serialize(term):
    """The config of a term (`keras.saving.serialize_keras_object`)."""
    if not isinstance(term, Term):
        raise TypeError("Argument `term` must be a keras_kd.terms.Term. "
                        f"Received: term={term!r}")
    return keras.saving.serialize_keras_object(term)


def deserialize(config, custom_objects=None):
    """A term from `serialize`'s config."""
    return keras.saving.deserialize_keras_object(
        config, module_objects=ALL_OBJECTS_DICT,
        custom_objects=custom_objects)


def get(identifier):
    """A term class by name (`"pkt"`, `"PKT"`), a term from a config dict,
    or the term itself.

    Raises:
        ValueError: for an unknown name, listing the known ones.
    """
    if isinstance(identifier, Term):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        if identifier not in ALL_OBJECTS_DICT:
            raise ValueError(
                f"Unknown term {identifier!r}. Known names: "
                f"{sorted(ALIASES)} (or their class names). Received: "
                f"identifier={identifier!r}")
        return ALL_OBJECTS_DICT[identifier]
    raise TypeError(
        "Argument `identifier` must be a term name, a config dict or a "
        f"Term. Received: identifier={identifier!r} of type "
        f"{type(identifier).__name__}")


__all__ = ["AttentionMapTerm", "AttentionTransferTerm",
           "CorrelationCongruence", "CRD", "DIST", "DKD", "FSP",
           "FeatureRelationTerm", "HintTerm", "LayerPairTerm",
           "LogitStandardization",
           "LogitTerm", "LossTerm", "PKT", "PairTerm", "RKD",
           "SRD", "SimilarityPreserving", "SoftTargetTerm", "TapValues", "Term",
           "VID",
           "deserialize", "get", "serialize"]
