"""Distillation across machines: `MultiWorkerMirroredStrategy`.

Keras 3's own `fit` fails under this strategy (keras-team/keras#20585)
in two places, both worked around inside `keras_kd.Distiller`, so
`distiller.fit` runs across workers as written for one machine:

1. Before the first step Keras all-reduces the first input batch across
   workers, eagerly, just to learn its shapes; that reduce of a
   `PerReplica` value fails. The Distiller builds from the first local
   replica's batch instead.
2. Each step's logs are reduced with `reduce("MEAN", value, axis=0)`,
   which fails for scalars; the Distiller's steps give them that axis.

Each worker runs the same script; the global batch is the dataset's batch
and the result matches one process with as many devices. What this module
adds is what every worker needs to agree on:

- `is_chief()`: the one worker that writes files (the student, reports).
- `MultiWorkerBackupAndRestore`: fault tolerance. Only the chief writes
  the backup (weights, then a metadata file naming them, each atomically);
  every worker restores from it, so all resume from the same epoch.

Launching: start the same script once per worker with `TF_CONFIG` set,
e.g. for two machines

    TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]},
                "task": {"type": "worker", "index": 0}}' python train.py

(`index` 1 on the second machine). Under Slurm, build the strategy with
`tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=
tf.distribute.cluster_resolver.SlurmClusterResolver())` and `srun` one task
per node. Create the strategy before anything else touches TensorFlow, and
the teacher, student and `Distiller` inside `strategy.scope()`.

Plain `BatchNormalization` normalises over each replica's examples, and
which examples share a replica differs between workers (tf.data
auto-sharding) and one process's devices: results then differ slightly.
`BatchNormalization(synchronized=True)` uses the global batch and gives
the same weights either way (`tests/test_multi_worker.py`).

If a worker dies, the others stop with an error from the collective ops
(TensorFlow's coordination service notices the missing heartbeat); restart
every worker with the same command and `MultiWorkerBackupAndRestore`
resumes from the last finished epoch.

Example:

```python
strategy = tf.distribute.MultiWorkerMirroredStrategy()
with strategy.scope():
    distiller = keras_kd.Distiller(teacher, student)
    distiller.compile(optimizer="adam")
distiller.fit(train.batch(256), epochs=10, callbacks=[
    keras_kd.multi_worker.MultiWorkerBackupAndRestore("/shared/backup")])
if keras_kd.multi_worker.is_chief():
    student.save("student.keras")
```

Reference: Sergeev & Del Balso, "Horovod: fast and easy distributed deep
learning in TensorFlow", 2018 (synchronous all-reduce data parallelism).
"""

import json
import os

import keras
import tensorflow as tf

from keras_kd.utils import compat
from keras_kd.utils.io import write_text_atomic

_METADATA = "training_metadata.json"


def is_chief(strategy=None):
    """Whether this process is the chief: the task of type `"chief"`, or
    worker 0 when the cluster has no chief; `True` outside multi-worker
    training.

    Args:
        strategy: the strategy in use; by default the current one inside a
            `strategy.scope()`, else the cluster `TF_CONFIG` describes (pass
            the strategy when it has another cluster resolver, e.g. Slurm).
    """
    strategy = strategy or tf.distribute.get_strategy()
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    cluster = resolver.cluster_spec().as_dict()
    if not cluster:
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type == "chief":
        return True
    return task_type == "worker" and task_id == 0 and "chief" not in cluster


class MultiWorkerBackupAndRestore(keras.callbacks.Callback):
    """Backs up training at each epoch's end and resumes from it.

    Like `keras.callbacks.BackupAndRestore`, but safe with several workers
    sharing `backup_dir` (a shared file system): only the chief writes, and
    every worker restores from the chief's files, so all resume at the same
    epoch with the same weights. A backup is `epoch-<n>.weights.h5` (written
    to a temporary file and renamed) and then `training_metadata.json`
    naming it (also atomic): a process killed mid-write leaves the previous
    backup in force. Works the same on one machine.

    Args:
        backup_dir: folder of the backup, on storage every worker reads.
        delete_checkpoint: remove the backup when training completes.

    Example:

    ```python
    distiller.fit(train, epochs=10, callbacks=[
        MultiWorkerBackupAndRestore("/shared/backup")])
    ```
    """

    def __init__(self, backup_dir, delete_checkpoint=True):
        super().__init__()
        if not backup_dir or not isinstance(backup_dir, (str, os.PathLike)):
            raise ValueError("Argument `backup_dir` must be a folder path. "
                             f"Received: backup_dir={backup_dir!r}")
        self.backup_dir = os.fspath(backup_dir)
        self.delete_checkpoint = delete_checkpoint

    def _metadata_path(self):
        return os.path.join(self.backup_dir, _METADATA)

    def on_train_begin(self, logs=None):
        path = self._metadata_path()
        if not os.path.exists(path):
            return
        with open(path) as f:
            metadata = json.load(f)
        weights = os.path.join(self.backup_dir, metadata["weights"])
        if not os.path.exists(weights):
            raise ValueError(
                f"The backup in {self.backup_dir} names {metadata['weights']}"
                ", which is missing. Delete the folder to start over.")
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None and not optimizer.built:
            optimizer.build(self.model.trainable_variables)
        self.model.load_weights(weights)
        compat.set_initial_epoch(self.model, metadata["epoch"])

    def on_epoch_end(self, epoch, logs=None):
        if not is_chief(self.model.distribute_strategy):
            return
        os.makedirs(self.backup_dir, exist_ok=True)
        name = f"epoch-{epoch + 1}.weights.h5"
        # Keras picks the format by the suffix: the temporary name keeps it.
        temp = os.path.join(self.backup_dir,
                            f".{name}.tmp-{os.getpid()}.weights.h5")
        try:
            self.model.save_weights(temp)
            os.replace(temp, os.path.join(self.backup_dir, name))
        except BaseException:
            if os.path.exists(temp):
                os.remove(temp)
            raise
        previous = self._previous_weights()
        write_text_atomic(self._metadata_path(), json.dumps(
            {"epoch": epoch + 1, "weights": name}))
        for old in previous:
            if old != name:
                os.remove(os.path.join(self.backup_dir, old))

    def _previous_weights(self):
        return [f for f in os.listdir(self.backup_dir)
                if f.startswith("epoch-") and f.endswith(".weights.h5")]

    def on_train_end(self, logs=None):
        if self.delete_checkpoint and is_chief(
                self.model.distribute_strategy) and os.path.isdir(
                    self.backup_dir):
            for name in self._previous_weights() + [_METADATA]:
                path = os.path.join(self.backup_dir, name)
                if os.path.exists(path):
                    os.remove(path)
