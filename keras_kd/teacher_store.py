"""Teacher outputs on disk: sharded, resumable, atomic, streamed back.

`precompute_teacher(..., directory=...)` writes here instead of holding
every output in memory. The layout of a store directory:

- `shard-00000.tfrecord`, `shard-00001.tfrecord`, ...: TFRecord files; each
  record is one teacher batch, each tensor of the element (the inputs, the
  label, the teacher's logits or top-k targets, the stored layer values)
  serialized with `tf.io.serialize_tensor`. A shard is written to a
  temporary file and renamed once complete.
- `manifest.json`: written atomically after every shard. It holds the
  store's signature (format, teachers by name, parameter count and a
  SHA-256 of their weights, the stored keys, `top_k`, the element's
  structure, dtypes and shapes) and the finished shards with their example
  counts and byte sizes; `"complete": true` once the dataset is done.

Resuming: run the same `precompute_teacher` call again. Finished shards
are checked (size) and kept; the dataset is skipped past them; the teacher
runs only on the rest. A directory written for another teacher, other
layers or another `top_k` is a clear error that says what differs; so is a
missing or truncated shard, or a directory that is not a store.

Reading streams the records (`tf.data.TFRecordDataset`), parses a whole
teacher batch at a time and unbatches: memory does not grow with the
dataset. Shuffle with a buffer (`.shuffle(10_000)`), and pass
`shuffle_shards=True` to `open_teacher_store` to also visit the shards in a
new order every epoch.

Example:

```python
train = keras_kd.precompute_teacher(teacher, unbatched_train,
                                    directory="/data/teacher_outputs")
# Later, in another process, without the teacher:
train = keras_kd.open_teacher_store("/data/teacher_outputs")
distiller.fit(train.shuffle(10_000).batch(128), epochs=10)
```
"""

import hashlib
import json
import os

import keras
import numpy as np
import tensorflow as tf

from keras_kd.utils.io import write_text_atomic

FORMAT = "keras_kd.teacher_store/1"
MANIFEST = "manifest.json"


def teacher_fingerprint(teachers):
    """Name, parameter count and weights SHA-256 of each teacher."""
    prints = []
    for teacher in teachers:
        digest = hashlib.sha256()
        for weight in teacher.weights:
            digest.update(np.ascontiguousarray(
                keras.ops.convert_to_numpy(weight)).tobytes())
        prints.append({"name": teacher.name,
                       "params": int(teacher.count_params()),
                       "weights_sha256": digest.hexdigest()})
    return prints


def _structure_and_leaves(element):
    """A JSON template of `element` (leaves replaced by their index) and
    the flat list of leaves."""
    leaves = []

    def template(value):
        if isinstance(value, dict):
            return {"dict": {str(k): template(v)
                             for k, v in sorted(value.items())}}
        if isinstance(value, (list, tuple)):
            return {"list": [template(v) for v in value]}
        leaves.append(value)
        return len(leaves) - 1

    return template(element), leaves


def _pack(template, leaves):
    if isinstance(template, int):
        return leaves[template]
    if "dict" in template:
        return {k: _pack(v, leaves) for k, v in template["dict"].items()}
    return tuple(_pack(v, leaves) for v in template["list"])


class StoreWriter:
    """Writes batches of one precompute into a store directory, shard by
    shard; `examples_done` says how many examples earlier runs finished.

    Args:
        directory: the store folder (created if missing).
        signature: what identifies the outputs (see the module docstring).
        shard_size: examples per shard (whole teacher batches).
    """

    def __init__(self, directory, signature, shard_size):
        self.directory = os.fspath(directory)
        self.signature = signature
        self.shard_size = shard_size
        os.makedirs(self.directory, exist_ok=True)
        if not os.access(self.directory, os.W_OK):
            raise PermissionError(
                "Argument `directory` is not writable. Received: "
                f"directory={self.directory!r}")
        manifest = _read_manifest(self.directory, must_exist=False)
        if manifest is None:
            self.shards = []
            self.complete = False
        else:
            _check_signature(manifest, signature, self.directory)
            _check_shards(manifest, self.directory)
            self.shards = list(manifest["shards"])
            self.complete = manifest["complete"]
        self.structure = manifest["structure"] if manifest else None
        for name in os.listdir(self.directory):  # a killed run's leftovers
            if name.startswith(".shard-") and ".tmp-" in name:
                os.remove(os.path.join(self.directory, name))
        self._writer = None
        self._temp = None
        self._examples = 0

    @property
    def examples_done(self):
        return sum(shard["examples"] for shard in self.shards)

    def write(self, element, batch_examples):
        """Appends one batch (`element` with a leading batch axis)."""
        structure, leaves = _structure_and_leaves(element)
        specs = [[str(np.asarray(v).dtype), list(np.shape(v)[1:])]
                 for v in leaves]
        if self.structure is None:
            self.structure = {"template": structure, "specs": specs}
        elif self.structure != {"template": structure, "specs": specs}:
            raise ValueError(
                f"The teacher outputs no longer match the store in "
                f"{self.directory}: expected the structure "
                f"{self.structure}, got {structure} with {specs}.")
        if self._writer is None:
            self._open_shard()
        features = {
            f"t{i}": tf.train.Feature(bytes_list=tf.train.BytesList(
                value=[tf.io.serialize_tensor(np.asarray(v)).numpy()]))
            for i, v in enumerate(leaves)}
        record = tf.train.Example(
            features=tf.train.Features(feature=features))
        try:
            self._writer.write(record.SerializeToString())
        except Exception as e:  # noqa: BLE001 - disk full, I/O errors
            self._abandon_shard()
            raise OSError(
                f"Writing shard {len(self.shards)} of the teacher store in "
                f"{self.directory} failed ({type(e).__name__}: {e}). The "
                f"{len(self.shards)} finished shard(s) are kept; free space "
                "and run the same call again to resume.") from e
        self._examples += batch_examples
        if self._examples >= self.shard_size:
            self.close_shard()

    def _shard_name(self, index):
        return f"shard-{index:05d}.tfrecord"

    def _open_shard(self):
        index = len(self.shards)
        self._temp = os.path.join(
            self.directory, f".{self._shard_name(index)}.tmp-{os.getpid()}")
        self._writer = tf.io.TFRecordWriter(self._temp)
        self._examples = 0

    def _abandon_shard(self):
        try:
            self._writer.close()
        except Exception:  # noqa: BLE001 - the error being raised matters
            pass
        if self._temp and os.path.exists(self._temp):
            os.remove(self._temp)
        self._writer = self._temp = None
        self._examples = 0

    def close_shard(self):
        """Finishes the open shard: flush, rename, record in the manifest."""
        if self._writer is None:
            return
        try:
            self._writer.close()
            name = self._shard_name(len(self.shards))
            final = os.path.join(self.directory, name)
            os.replace(self._temp, final)
        except Exception as e:  # noqa: BLE001
            self._abandon_shard()
            raise OSError(
                f"Finishing shard {len(self.shards)} in {self.directory} "
                f"failed ({type(e).__name__}: {e}); run the same call again "
                "to resume.") from e
        self.shards.append({"file": name, "examples": self._examples,
                            "bytes": os.path.getsize(final)})
        self._writer = self._temp = None
        self._examples = 0
        self._write_manifest()

    def abandon(self):
        """Drops the open (unfinished) shard; finished ones stay."""
        if self._writer is not None:
            self._abandon_shard()

    def finish(self):
        self.close_shard()
        if not self.shards:
            raise ValueError("Argument `dataset` is empty.")
        self.complete = True
        self._write_manifest()

    def _write_manifest(self):
        manifest = {"format": FORMAT, "signature": self.signature,
                    "structure": self.structure, "shards": self.shards,
                    "complete": self.complete}
        write_text_atomic(os.path.join(self.directory, MANIFEST),
                          json.dumps(manifest, indent=1))


def _read_manifest(directory, must_exist=True):
    path = os.path.join(directory, MANIFEST)
    if not os.path.exists(path):
        foreign = [f for f in os.listdir(directory)
                   if not f.startswith(".")] if os.path.isdir(
                       directory) else []
        if must_exist or foreign:
            raise ValueError(
                f"{directory!r} is not a keras_kd teacher store: it has no "
                f"{MANIFEST}" + (f" but holds {sorted(foreign)[:5]}; use an "
                                 "empty or new folder." if foreign else "."))
        return None
    try:
        with open(path) as f:
            manifest = json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError(f"The manifest {path} cannot be read: {e}") from e
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(
            f"{path} is not a keras_kd teacher store manifest (format "
            f"{manifest.get('format') if isinstance(manifest, dict) else '?'}"
            f", expected {FORMAT!r}).")
    return manifest


def _check_signature(manifest, signature, directory):
    stored = manifest["signature"]
    if stored == signature:
        return
    differences = [f"{key}: stored {stored.get(key)!r}, now "
                   f"{signature.get(key)!r}"
                   for key in sorted(set(stored) | set(signature))
                   if stored.get(key) != signature.get(key)]
    raise ValueError(
        f"The teacher store in {directory} was written by another teacher "
        "or for other layers or settings; it cannot be resumed or reused. "
        "Differences: " + "; ".join(differences) + ". Use a new directory "
        "or delete this one.")


def _check_shards(manifest, directory):
    for shard in manifest["shards"]:
        path = os.path.join(directory, shard["file"])
        if not os.path.exists(path):
            raise ValueError(
                f"The teacher store in {directory} lists {shard['file']}, "
                "which is missing. Delete the directory and precompute "
                "again.")
        size = os.path.getsize(path)
        if size != shard["bytes"]:
            raise ValueError(
                f"{path} is truncated or altered: {size} bytes on disk, "
                f"{shard['bytes']} recorded. Delete the directory and "
                "precompute again.")


def open_teacher_store(directory, shuffle_shards=False, seed=None):
    """The unbatched `(x, y)` dataset of a complete store directory.

    Args:
        directory: a folder written by `precompute_teacher(directory=...)`.
        shuffle_shards: visit the shards in a new order each epoch (then
            shuffle the examples with `.shuffle(buffer)` as usual).
        seed: seed of the shard order.

    Raises:
        ValueError: for a folder that is not a store, an unfinished one
            (run the precompute again to resume it), or a missing or
            truncated shard.
    """
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise ValueError("Argument `directory` is not a folder. Received: "
                         f"directory={directory!r}")
    manifest = _read_manifest(directory)
    if not manifest["complete"]:
        raise ValueError(
            f"The teacher store in {directory} is unfinished "
            f"({len(manifest['shards'])} shard(s) done): run the same "
            "precompute_teacher call again to resume it.")
    _check_shards(manifest, directory)
    template = manifest["structure"]["template"]
    specs = manifest["structure"]["specs"]
    files = [os.path.join(directory, s["file"]) for s in manifest["shards"]]
    features = {f"t{i}": tf.io.FixedLenFeature([], tf.string)
                for i in range(len(specs))}

    def parse(record):
        parsed = tf.io.parse_single_example(record, features)
        leaves = [tf.ensure_shape(
            tf.io.parse_tensor(parsed[f"t{i}"], out_type=tf.dtypes.as_dtype(
                dtype)), [None] + shape)
            for i, (dtype, shape) in enumerate(specs)]
        return _pack(template, leaves)

    names = tf.data.Dataset.from_tensor_slices(files)
    if shuffle_shards:
        names = names.shuffle(len(files), seed=seed,
                              reshuffle_each_iteration=True)
    if shuffle_shards:
        records = names.interleave(
            tf.data.TFRecordDataset, cycle_length=min(4, len(files)),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
    else:  # the order of the precompute's dataset
        records = names.flat_map(tf.data.TFRecordDataset)
    examples = sum(s["examples"] for s in manifest["shards"])
    # A known length lets Keras size its epochs and progress bars.
    return records.map(parse, num_parallel_calls=tf.data.AUTOTUNE,
                       deterministic=True).unbatch().apply(
                           tf.data.experimental.assert_cardinality(examples))


def store_examples(directory):
    """Examples in a store (from its manifest)."""
    return sum(s["examples"] for s in _read_manifest(directory)["shards"])
