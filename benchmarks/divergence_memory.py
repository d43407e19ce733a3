"""Peak temporary memory of each language-model divergence at vocab 32k.

For `(batch, steps, vocab)` logits, the loss and its gradient with respect
to the student's logits are compiled by XLA on the JAX backend, and XLA's
own memory analysis of the compiled program gives its temporary buffers.
Printed in units of one `(batch, steps, vocab)` float32 tensor: the aim is
a small constant number of them, whatever the vocabulary.

    KERAS_BACKEND=jax python benchmarks/divergence_memory.py [--vocab 32000]
"""

import argparse
import os

os.environ["KERAS_BACKEND"] = "jax"

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import keras_kd  # noqa: E402
from keras_kd_examples.cli import description  # noqa: E402

LOSSES = {
    "SoftTargetKD": lambda: keras_kd.losses.SoftTargetKD(temperature=2.0),
    "ReverseKL": lambda: keras_kd.losses.ReverseKL(temperature=2.0),
    "GeneralizedJSD": lambda: keras_kd.losses.GeneralizedJSD(0.5, 2.0),
    "SkewKL": lambda: keras_kd.losses.SkewKL(0.1, 2.0),
    "SkewReverseKL": lambda: keras_kd.losses.SkewReverseKL(0.1, 2.0),
}


def main():
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=128)
    parser.add_argument("--vocab", type=int, default=32000)
    args = parser.parse_args()
    shape = (args.batch, args.steps, args.vocab)
    unit = 4 * args.batch * args.steps * args.vocab
    teacher = jax.ShapeDtypeStruct(shape, jnp.float32)
    student = jax.ShapeDtypeStruct(shape, jnp.bfloat16)
    print(f"logits {shape}: one float32 tensor is {unit / 2**20:.0f} MiB; "
          "temporary memory of the compiled loss (and of loss + gradient), "
          "in such tensors:")
    for name, make in LOSSES.items():
        loss = make()

        def value(t, s):
            return loss(t, s)

        rows = []
        for fn in (value, jax.grad(value, argnums=1)):
            compiled = jax.jit(fn).lower(teacher, student).compile()
            rows.append(compiled.memory_analysis().temp_size_in_bytes / unit)
        print(f"  {name:<15s} loss {rows[0]:5.2f}   loss + gradient "
              f"{rows[1]:5.2f}")


if __name__ == "__main__":
    main()
