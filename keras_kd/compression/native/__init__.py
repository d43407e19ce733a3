"""Keras-native pruning and quantization-aware training.

For students TF-MOT cannot take (keras-hub transformers, custom Keras 3
layers, `MultiHeadAttention`): `weights` finds their kernels, `masks`
prunes them by magnitude, `fake_quant` trains them for int8. `prune` and
`quantize` choose this path by themselves (`path="auto"`).
"""
