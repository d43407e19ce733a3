"""Disk-backed teacher outputs: same data as in memory, resumable,
atomic per shard, and clear errors for foreign or damaged stores."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import make_cnn
from conftest import make_nested_teacher

import keras_kd

LAYERS = ["backbone/relu1"]


def unbatched(x, y):
    return tf.data.Dataset.from_tensor_slices((x, y))


def as_arrays(dataset):
    batches = list(dataset.batch(1000))
    assert len(batches) == 1
    return keras.tree.map_structure(np.asarray, batches[0])


def assert_same(a, b):
    keras.tree.assert_same_structure(a, b)
    for left, right in zip(keras.tree.flatten(a), keras.tree.flatten(b)):
        assert left.dtype == right.dtype
        np.testing.assert_array_equal(left, right)


def test_disk_store_streams_back_what_memory_holds(data, tmp_path):
    x, y = data
    teacher = make_nested_teacher()
    kwargs = dict(batch_size=5, attention_layers=LAYERS, verbose=0)
    memory = keras_kd.precompute_teacher(teacher, unbatched(x, y), **kwargs)
    disk = keras_kd.precompute_teacher(teacher, unbatched(x, y),
                                       directory=tmp_path, shard_size=10,
                                       **kwargs)
    assert_same(as_arrays(disk), as_arrays(memory))
    # Shards hold whole teacher batches: 10 examples = 2 batches of 5.
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert [s["examples"] for s in manifest["shards"]] == [10, 10, 10, 2]
    assert manifest["complete"] is True
    assert int(disk.cardinality()) == 32
    reopened = keras_kd.open_teacher_store(tmp_path)
    assert_same(as_arrays(reopened), as_arrays(memory))
    shuffled = as_arrays(keras_kd.open_teacher_store(
        tmp_path, shuffle_shards=True, seed=3))
    np.testing.assert_array_equal(np.sort(shuffled[1]["y"]), np.sort(y))


def test_training_on_the_store_equals_training_in_memory(data, tmp_path):
    x, y = data
    teacher, student = make_nested_teacher(), make_cnn(4, "student")
    init = student.get_weights()
    results = []
    for directory in (None, tmp_path):
        student.set_weights(init)
        distiller = keras_kd.Distiller(
            teacher, student, attention_pairs=[("backbone/relu1", "relu1")])
        distiller.compile(optimizer=keras.optimizers.SGD(0.05))
        train = distiller.precompute(unbatched(x, y), directory=directory,
                                     top_k=4, shard_size=8, verbose=0)
        distiller.fit(train.batch(8), epochs=2, verbose=0)
        results.append(student.get_weights())
    for left, right in zip(*results):
        np.testing.assert_allclose(left, right, rtol=1e-5, atol=1e-6)


class Counting:
    """A teacher wrapper that counts the examples the teacher sees."""

    def __init__(self):
        self.seen = tf.Variable(0, dtype=tf.int64, trainable=False)

    def teacher(self):
        base = make_cnn(8, "teacher")
        inputs = keras.Input((12, 12, 1))

        def count(t):
            with tf.control_dependencies([self.seen.assign_add(
                    tf.cast(tf.shape(t)[0], tf.int64))]):
                return tf.identity(t)

        outputs = base(keras.layers.Lambda(count)(inputs))
        return keras.Model(inputs, outputs, name="teacher")


def test_an_interrupted_precompute_resumes_without_redoing_shards(
        data, tmp_path, monkeypatch):
    x, y = data
    counting = Counting()
    teacher = counting.teacher()
    from keras_kd import teacher_store

    real_write = teacher_store.StoreWriter.write
    calls = []

    def interrupted(self, element, n):
        calls.append(n)
        if len(calls) == 4:  # mid-shard 1 (shards of 2 batches)
            raise KeyboardInterrupt
        return real_write(self, element, n)

    monkeypatch.setattr(teacher_store.StoreWriter, "write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        keras_kd.precompute_teacher(teacher, unbatched(x, y), batch_size=4,
                                    directory=tmp_path, shard_size=8,
                                    verbose=0)
    monkeypatch.setattr(teacher_store.StoreWriter, "write", real_write)
    assert sorted(os.listdir(tmp_path)) == ["manifest.json",
                                            "shard-00000.tfrecord"]
    with pytest.raises(ValueError, match="unfinished.*1 shard"):
        keras_kd.open_teacher_store(tmp_path)
    first = os.stat(tmp_path / "shard-00000.tfrecord")
    counting.seen.assign(0)
    resumed = keras_kd.precompute_teacher(
        teacher, unbatched(x, y), batch_size=4, directory=tmp_path,
        shard_size=8, verbose=0)
    assert int(counting.seen.numpy()) == 32 - 8  # the finished shard kept
    assert os.stat(tmp_path / "shard-00000.tfrecord").st_mtime_ns == (
        first.st_mtime_ns)
    fresh = keras_kd.precompute_teacher(teacher, unbatched(x, y),
                                        batch_size=4, verbose=0)
    assert_same(as_arrays(resumed), as_arrays(fresh))
    # A complete store is reused as it is: the teacher does not run.
    counting.seen.assign(0)
    keras_kd.precompute_teacher(teacher, unbatched(x, y), batch_size=4,
                                directory=tmp_path, shard_size=8, verbose=0)
    assert int(counting.seen.numpy()) == 0


def test_a_full_disk_mid_shard_leaves_only_finished_shards(
        data, tmp_path, monkeypatch):
    x, y = data
    teacher = make_cnn(8, "teacher")
    real = tf.io.TFRecordWriter
    writes = []

    class FullDisk:
        def __init__(self, path):
            self._inner = real(path)

        def write(self, record):
            writes.append(1)
            if len(writes) == 3:
                raise OSError(28, "No space left on device")
            self._inner.write(record)

        def close(self):
            self._inner.close()

    monkeypatch.setattr(tf.io, "TFRecordWriter", FullDisk)
    with pytest.raises(OSError, match="shard 1 .*No space left.*resume"):
        keras_kd.precompute_teacher(teacher, unbatched(x, y), batch_size=4,
                                    directory=tmp_path, shard_size=8,
                                    verbose=0)
    monkeypatch.setattr(tf.io, "TFRecordWriter", real)
    assert sorted(os.listdir(tmp_path)) == ["manifest.json",
                                            "shard-00000.tfrecord"]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["complete"] is False and len(manifest["shards"]) == 1
    resumed = keras_kd.precompute_teacher(
        teacher, unbatched(x, y), batch_size=4, directory=tmp_path,
        shard_size=8, verbose=0)
    assert len(as_arrays(resumed)[1]["y"]) == 32


def test_foreign_and_damaged_stores_are_clear_errors(data, tmp_path):
    x, y = data
    teacher = make_nested_teacher()
    keras_kd.precompute_teacher(teacher, unbatched(x, y), directory=tmp_path,
                                attention_layers=LAYERS, batch_size=8,
                                shard_size=16, verbose=0)
    other = make_nested_teacher(name="teacher")
    with pytest.raises(ValueError, match="another teacher.*weights_sha256"):
        keras_kd.precompute_teacher(other, unbatched(x, y),
                                    directory=tmp_path,
                                    attention_layers=LAYERS, verbose=0)
    with pytest.raises(ValueError, match="keys: stored"):
        keras_kd.precompute_teacher(teacher, unbatched(x, y),
                                    directory=tmp_path, verbose=0)
    with pytest.raises(ValueError, match="top_k: stored None, now 3"):
        keras_kd.precompute_teacher(teacher, unbatched(x, y),
                                    directory=tmp_path,
                                    attention_layers=LAYERS, top_k=3,
                                    verbose=0)
    shard = tmp_path / "shard-00001.tfrecord"
    shard.write_bytes(shard.read_bytes()[:-7])
    with pytest.raises(ValueError, match="truncated.*7 bytes|truncated"):
        keras_kd.open_teacher_store(tmp_path)
    elsewhere = tmp_path / "photos"
    elsewhere.mkdir()
    (elsewhere / "cat.jpg").write_bytes(b"x")
    with pytest.raises(ValueError, match="not a keras_kd teacher store"):
        keras_kd.precompute_teacher(teacher, unbatched(x, y),
                                    directory=elsewhere, verbose=0)
    with pytest.raises(ValueError, match="not a keras_kd teacher store"):
        keras_kd.open_teacher_store(elsewhere)


def test_a_keras_applications_teacher_through_the_store(tmp_path):
    # A model we did not write: MobileNetV2, random initialisation.
    teacher = keras.applications.MobileNetV2(
        input_shape=(32, 32, 3), alpha=0.35, weights=None, classes=10,
        classifier_activation=None)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(24, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, 24)
    student = make_cnn(4, "student", input_shape=(32, 32, 3))
    distiller = keras_kd.Distiller(
        teacher, student, attention_pairs=[("block_6_expand_relu", "relu1")])
    distiller.compile(optimizer=keras.optimizers.SGD(0.0), temperature=1.0)
    live = distiller.evaluate(x, y, batch_size=8, verbose=0,
                              return_dict=True)
    stored = distiller.precompute(unbatched(x, y), batch_size=8,
                                  directory=tmp_path, top_k=9, verbose=0)
    offline = distiller.evaluate(stored.batch(8), verbose=0,
                                 return_dict=True)
    # k = C - 1 keeps the soft targets exact; the maps are stored as is.
    for key in ("loss", "distillation_loss", "attention_loss"):
        assert offline[key] == pytest.approx(live[key], rel=1e-4), key
