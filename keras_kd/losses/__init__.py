"""Distillation losses: each with its formula, paper and NumPy-checked tests."""

from keras_kd.losses.hint_mse import HintMSE
from keras_kd.losses.attention_map_kd import AttentionMapKD
from keras_kd.losses.attention_transfer import AttentionTransfer
from keras_kd.losses.logits_divergence import LogitsDivergence
from keras_kd.losses.soft_target_kd import SoftTargetKD

__all__ = ["AttentionMapKD", "AttentionTransfer", "HintMSE", "LogitsDivergence",
           "SoftTargetKD"]
