"""Distillation terms: each a weighted loss between tapped layers.

The Distiller sums its terms (see `Term` for the contract); write your own
by subclassing `Term`.
"""

from keras_kd.terms.attention_maps import AttentionMapTerm
from keras_kd.terms.attention_transfer import AttentionTransferTerm
from keras_kd.terms.hints import HintTerm
from keras_kd.terms.loss_term import LossTerm
from keras_kd.terms.pair_term import PairTerm
from keras_kd.terms.soft_targets import SoftTargetTerm
from keras_kd.terms.term import TapValues
from keras_kd.terms.term import Term

__all__ = ["AttentionMapTerm", "AttentionTransferTerm", "HintTerm",
           "LossTerm", "PairTerm", "SoftTargetTerm", "TapValues", "Term"]
