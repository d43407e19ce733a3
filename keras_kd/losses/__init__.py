"""Distillation losses: each with its formula, paper and NumPy-checked tests."""

from keras_kd.losses.attention_map_kd import AttentionMapKD
from keras_kd.losses.attention_transfer import AttentionTransfer
from keras_kd.losses.generalized_jsd import GeneralizedJSD
from keras_kd.losses.hint_mse import HintMSE
from keras_kd.losses.logits_divergence import LogitsDivergence
from keras_kd.losses.reverse_kl import ReverseKL
from keras_kd.losses.skew_kl import SkewKL
from keras_kd.losses.skew_kl import SkewReverseKL
from keras_kd.losses.soft_target_kd import SoftTargetKD

__all__ = ["AttentionMapKD", "AttentionTransfer", "GeneralizedJSD",
           "HintMSE", "LogitsDivergence", "ReverseKL", "SkewKL",
           "SkewReverseKL", "SoftTargetKD"]
