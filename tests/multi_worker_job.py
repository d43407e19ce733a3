"""One process of the multi-worker tests (`tests/test_multi_worker.py`).

    python multi_worker_job.py OUT_DIR mirrored
    python multi_worker_job.py OUT_DIR worker INDEX PORT0,PORT1 [--die-at E]
        [--backup DIR]

Distils a small CNN on fixed data (global batch 16, SGD, no shuffling) and
writes `<name>.json`: the student's flattened weights, the history, the
evaluation and `is_chief()`. `--die-at E` kills this process (exit code
17) in the middle of epoch E, after `MultiWorkerBackupAndRestore` backed
up the epochs before it.
"""

import argparse
import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("role", choices=["mirrored", "worker"])
    parser.add_argument("index", nargs="?", type=int, default=0)
    parser.add_argument("ports", nargs="?", default="")
    parser.add_argument("--die-at", type=int)
    parser.add_argument("--backup")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()

    import tensorflow as tf

    if args.role == "worker":
        os.environ["TF_CONFIG"] = json.dumps({
            "cluster": {"worker": [f"localhost:{p}"
                                   for p in args.ports.split(",")]},
            "task": {"type": "worker", "index": args.index}})
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        name = f"worker{args.index}"
    else:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        name = "mirrored"

    import keras
    import numpy as np

    import keras_kd
    from keras_kd.multi_worker import MultiWorkerBackupAndRestore
    from keras_kd.multi_worker import is_chief

    def cnn(width, model_name):
        inputs = keras.Input((12, 12, 1))
        x = keras.layers.Conv2D(width, 3, padding="same", name="conv1")(
            inputs)
        # Synchronized: statistics over the global batch, whichever
        # replica holds which example.
        x = keras.layers.BatchNormalization(synchronized=True, name="bn1")(x)
        x = keras.layers.ReLU(name="relu1")(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
        return keras.Model(inputs, keras.layers.Dense(10, name="logits")(x),
                           name=model_name)

    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 12, 12, 1)).astype("float32")
    y = rng.integers(0, 10, 96)
    keras.utils.set_random_seed(0)
    with strategy.scope():
        teacher, student = cnn(8, "teacher"), cnn(4, "student")
        distiller = keras_kd.Distiller(teacher, student,
                                       attention_pairs=[("relu1", "relu1")])
        distiller.compile(optimizer=keras.optimizers.SGD(0.1),
                          metrics=["accuracy"])
    train = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)

    class Die(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if self._epoch == args.die_at and batch == 2:
                sys.stdout.flush()
                os._exit(17)

        def on_epoch_begin(self, epoch, logs=None):
            self._epoch = epoch

    callbacks = []
    if args.backup:
        callbacks.append(MultiWorkerBackupAndRestore(
            args.backup, delete_checkpoint=False))
    if args.die_at is not None:
        callbacks.append(Die())
    history = distiller.fit(train, epochs=args.epochs, verbose=0,
                            callbacks=callbacks)
    evaluation = distiller.evaluate(train, verbose=0, return_dict=True)
    if is_chief():
        student.save(os.path.join(args.out, "student.keras"))
    weights = np.concatenate([w.ravel() for w in student.get_weights()])
    with open(os.path.join(args.out, f"{name}.json"), "w") as f:
        json.dump({"weights": weights.tolist(), "history": history.history,
                   "epochs_run": len(history.epoch),
                   "evaluation": evaluation, "chief": is_chief()}, f)


if __name__ == "__main__":
    main()
