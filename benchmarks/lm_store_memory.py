"""Peak memory of the top-k disk store for a causal LM, against the number
of sequences.

Each size runs in a fresh process: `Distiller.precompute(dataset,
directory=..., top_k=8)` over N random sequences (the keras-hub GPT-2 pair
of `keras_kd_examples.lm_job`, 96 tokens, 258-token vocabulary), reading
them from a generator so that the input itself takes no memory. Prints the
process's peak resident memory and the store's size on disk for each N.
Aim (issue "Language models"): memory flat in the number of sequences.

Usage:
    python benchmarks/lm_store_memory.py [--sizes 1024 4096 16384]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

CHILD = r"""
import json, os, resource, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np
import tensorflow as tf
import keras_kd
from keras_kd_examples import lm_job

count, directory = int(sys.argv[1]), sys.argv[2]
length = lm_job.CONFIG["length"] - 1
distiller = keras_kd.Distiller(lm_job.teacher_model(), lm_job.student_model())
distiller.compile(alpha=0.5)

def sequences():
    rng = np.random.default_rng(0)
    for _ in range(count):
        ids = rng.integers(1, lm_job.VOCABULARY, length + 1).astype("int32")
        yield ({"token_ids": ids[:-1], "padding_mask": np.ones(length, bool)},
               ids[1:])

spec = ({"token_ids": tf.TensorSpec((length,), tf.int32),
         "padding_mask": tf.TensorSpec((length,), tf.bool)},
        tf.TensorSpec((length,), tf.int32))
data = tf.data.Dataset.from_generator(sequences, output_signature=spec)
distiller.precompute(data, directory=directory, top_k=8, batch_size=64,
                     shard_size=1024, verbose=0)
size = sum(os.path.getsize(os.path.join(directory, f))
           for f in os.listdir(directory))
print(json.dumps({"peak_mib": resource.getrusage(
    resource.RUSAGE_SELF).ru_maxrss / 1024, "store_mib": size / 2**20}))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+",
                        default=[1024, 4096, 16384])
    args = parser.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root,
               KERAS_BACKEND="tensorflow")
    print("sequences  peak RSS (MiB)  store on disk (MiB)")
    for count in args.sizes:
        with tempfile.TemporaryDirectory() as directory:
            out = subprocess.run([sys.executable, "-c", CHILD, str(count),
                                  directory], env=env, capture_output=True,
                                 text=True, check=True)
        figures = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{count:9d}  {figures['peak_mib']:14.0f}  "
              f"{figures['store_mib']:19.1f}", flush=True)


if __name__ == "__main__":
    main()
