"""The Distiller on another Keras backend (`tests/test_backends.py`).

    KERAS_BACKEND=jax python backend_job.py DIR

Loads `DIR/teacher.keras`, `DIR/student.keras`, `DIR/batch.npz` (x, y) and
`DIR/connector.npz` (the hint connector's weights, so that every backend
starts equal), builds the same Distiller as the test, and writes
`DIR/<backend>.json`: its evaluation, the student's weights after one
epoch of `fit` (SGD, no shuffling), and, on JAX with two host devices, the
same under `keras.distribution.DataParallel`; then saves and reloads the
Distiller and evaluates it again.
"""

import json
import os
import sys

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")


def build(directory):
    import keras
    import numpy as np

    import keras_kd

    teacher = keras.models.load_model(os.path.join(directory,
                                                   "teacher.keras"))
    student = keras.models.load_model(os.path.join(directory,
                                                   "student.keras"))
    distiller = keras_kd.Distiller(
        teacher, student, attention_pairs=[("conv1", "conv1")],
        hint_pairs=[("conv2", "conv2")])
    connector = np.load(os.path.join(directory, "connector.npz"))
    distiller.connectors[0].set_weights([connector["kernel"],
                                         connector["bias"]])
    distiller.compile(optimizer=keras.optimizers.SGD(0.1), alpha=0.3,
                      temperature=2.0, metrics=["accuracy"])
    return distiller


def run(directory, x, y):
    import keras
    import numpy as np

    distiller = build(directory)
    start = [np.asarray(w).ravel().tolist()
             for w in distiller.student.get_weights()]
    logs = distiller.evaluate(x, y, batch_size=16, verbose=0,
                              return_dict=True)
    distiller.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    weights = [np.asarray(w).ravel().tolist()
               for w in distiller.student.get_weights()]
    path = os.path.join(directory, f"{keras.backend.backend()}.keras")
    distiller.save(path)
    restored = keras.models.load_model(path)
    again = restored.evaluate(x, y, batch_size=16, verbose=0,
                              return_dict=True)
    after = distiller.evaluate(x, y, batch_size=16, verbose=0,
                               return_dict=True)
    return {"evaluate": logs, "start": start, "weights": weights,
            "after_fit": after,
            "restored": again,
            "predict": np.asarray(distiller.predict(x, verbose=0)).tolist()}


def main():
    directory = sys.argv[1]
    import keras
    import numpy as np

    batch = np.load(os.path.join(directory, "batch.npz"))
    x, y = batch["x"], batch["y"]
    result = {"single": run(directory, x, y)}
    if keras.backend.backend() == "jax":
        devices = keras.distribution.list_devices()
        result["devices"] = len(devices)
        keras.distribution.set_distribution(
            keras.distribution.DataParallel(devices=devices))
        result["data_parallel"] = run(directory, x, y)
    with open(os.path.join(directory, f"{keras.backend.backend()}.json"),
              "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
