"""Distillation of causal language models.

Token-level KD of any keras-hub `CausalLM` runs in `keras_kd.Distiller`
itself (padding masks honoured, per-token top-k teachers on disk). This
package adds what is specific to generation: sampling continuations in one
compiled loop, sequence-level KD on teacher generations
(`generate_transfer_set`), on-policy distillation (`OnPolicyDistiller`,
GKD), perplexity, and a next-token LiteRT export whose greedy generation
matches Keras token for token.
"""

from keras_kd.lm.export import LiteRTGenerator
from keras_kd.lm.export import export_tflite
from keras_kd.lm.on_policy import OnPolicyDistiller
from keras_kd.lm.sampling import sample_continuations
from keras_kd.lm.sequences import next_token_data
from keras_kd.lm.sequences import perplexity
from keras_kd.lm.transfer_set import generate_transfer_set

__all__ = [
    "LiteRTGenerator",
    "OnPolicyDistiller",
    "export_tflite",
    "generate_transfer_set",
    "next_token_data",
    "perplexity",
    "sample_continuations",
]
