"""Reference teacher and student architectures used by the examples.

Small, channels-last Functional models whose intermediate outputs carry
stable names (`stage1_out`, `stage2_out`, ...) for attention pairs.
"""

import keras
import numpy as np


def _conv_bn_relu(x, filters, name, strides=1):
    x = keras.layers.Conv2D(filters, 3, strides=strides, padding="same",
                            use_bias=False, name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def _residual_block(x, filters, name, strides=1):
    shortcut = x
    y = _conv_bn_relu(x, filters, f"{name}_a", strides)
    y = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False,
                            name=f"{name}_b_conv")(y)
    y = keras.layers.BatchNormalization(name=f"{name}_b_bn")(y)
    if strides != 1 or shortcut.shape[-1] != filters:
        shortcut = keras.layers.Conv2D(filters, 1, strides=strides,
                                       use_bias=False,
                                       name=f"{name}_proj_conv")(shortcut)
        shortcut = keras.layers.BatchNormalization(
            name=f"{name}_proj_bn")(shortcut)
    y = keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return keras.layers.ReLU(name=f"{name}_out")(y)


def resnet_teacher(input_shape=(28, 28, 1), num_classes=10,
                   widths=(32, 64, 128), blocks_per_stage=1, dropout=0.3,
                   name="teacher"):
    """A small ResNet (He et al., 2016) for 28×28 or 32×32 images.

    A 3×3 stem at full resolution, then one stage per entry of `widths`;
    stages after the first halve the resolution. Stage outputs are named
    `stage{i}_out` (28×28, 14×14, 7×7 for Fashion-MNIST).

    Example:

    ```python
    from keras_kd_examples import models

    teacher = models.resnet_teacher()
    ```
    """
    inputs = keras.Input(input_shape, name="image")
    x = _conv_bn_relu(inputs, widths[0], "stem")
    for stage, filters in enumerate(widths, start=1):
        for block in range(blocks_per_stage):
            strides = 2 if stage > 1 and block == 0 else 1
            x = _residual_block(x, filters, f"stage{stage}_block{block}",
                                strides)
        x = keras.layers.Identity(name=f"stage{stage}_out")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name=name)


def count_blocks_per_stage(model):
    """Residual blocks per stage of a `resnet_teacher` model (0 for others).

    Example:

    ```python
    from keras_kd_examples import models

    models.count_blocks_per_stage(models.resnet_teacher())
    # 1
    ```
    """
    return sum(1 for layer in model.layers
               if layer.name.startswith("stage1_block")
               and layer.name.endswith("_out"))


def deepen_resnet(teacher, blocks_per_stage):
    """A deeper `resnet_teacher` that computes exactly what `teacher` does.

    Copies every layer of `teacher` by name into a `resnet_teacher` with
    more residual blocks per stage, and starts each new block with the
    scale and offset of its last BatchNormalization at zero, so the block
    adds nothing and its ReLU passes the (already non-negative) input
    through: the logits are unchanged until training moves the new blocks
    (Net2DeeperNet, Chen et al., 2016; zero-initialised residual branches,
    Goyal et al., 2017). Training then starts from the teacher's accuracy
    with more capacity instead of from scratch.

    Args:
        teacher: a model built by `resnet_teacher` (any widths).
        blocks_per_stage: blocks per stage of the result, more than the
            teacher has.

    Example:

    ```python
    from keras_kd_examples import models

    teacher = keras.models.load_model("teacher.keras")
    deeper = models.deepen_resnet(teacher, blocks_per_stage=2)
    # deeper.predict(x) == teacher.predict(x); now train `deeper`.
    ```
    """
    names = [layer.name for layer in teacher.layers]
    widths = []
    while f"stage{len(widths) + 1}_out" in names:
        widths.append(
            teacher.get_layer(f"stage{len(widths) + 1}_out").output.shape[-1])
    blocks = count_blocks_per_stage(teacher)
    if not (widths and blocks and "stem_conv" in names
            and "logits" in names):
        raise ValueError(
            "Argument `teacher` must be a model built by `resnet_teacher` "
            "(layers `stem_conv`, `stage1_block0_out`, ..., `logits`). "
            f"Received: model '{teacher.name}' with layers {names[:6]}...")
    if (isinstance(blocks_per_stage, bool)
            or not isinstance(blocks_per_stage, int)
            or blocks_per_stage <= blocks):
        raise ValueError(
            "Argument `blocks_per_stage` must be an int larger than the "
            f"teacher's {blocks} blocks per stage. Received: "
            f"blocks_per_stage={blocks_per_stage!r}")
    deeper = resnet_teacher(
        input_shape=tuple(teacher.input_shape[1:]),
        num_classes=teacher.get_layer("logits").units,
        widths=tuple(widths), blocks_per_stage=blocks_per_stage,
        dropout=teacher.get_layer("dropout").rate, name=teacher.name)
    for layer in deeper.layers:
        if layer.name in names:
            layer.set_weights(teacher.get_layer(layer.name).get_weights())
        elif layer.name.endswith("_b_bn"):
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights([np.zeros_like(gamma), np.zeros_like(beta),
                               mean, variance])
    return deeper


def cnn_student(input_shape=(28, 28, 1), num_classes=10,
                widths=(16, 32, 64), convs_per_stage=1, head="average",
                dense_units=0, dropout=0.2, name="student"):
    """A plain CNN student: conv-BN-ReLU stages, then a small head.

    Stage `i` is followed by 2×2 max pooling except the first, so stage
    outputs `stage{i}_out` have the teacher's resolutions (28, 14, 7) and
    can be paired with `resnet_teacher` stages for attention transfer.
    Convolution parameters do not grow with resolution, so a second
    convolution at 14×14 buys accuracy for few parameters; likewise the
    `"flatten"` head (3×3 max pooling, stride 2, then Flatten) keeps the
    coarse layout that global average pooling throws away.

    Args:
        widths: filters per stage.
        convs_per_stage: an int, or one int per stage. The last
            convolution of stage `i` is `stage{i}_conv`, earlier ones
            `stage{i}_{j}_conv`.
        head: `"average"` (global average pooling) or `"flatten"`.
        dense_units: optional hidden Dense layer before the logits.

    Example:

    ```python
    from keras_kd_examples import models

    student = models.cnn_student()
    # The main job's 65,474-parameter student:
    student = models.cnn_student(
        widths=(24, 48, 64), convs_per_stage=(1, 2, 1), head="flatten")
    ```
    """
    if isinstance(convs_per_stage, int):
        convs_per_stage = (convs_per_stage,) * len(widths)
    convs_per_stage = tuple(convs_per_stage)
    if len(convs_per_stage) != len(widths) or min(convs_per_stage) < 1:
        raise ValueError(
            "Argument `convs_per_stage` must be a positive int or one "
            f"positive int per entry of `widths` ({len(widths)}). Received: "
            f"convs_per_stage={convs_per_stage!r}")
    if head not in ("average", "flatten"):
        raise ValueError("Argument `head` must be 'average' or 'flatten'. "
                         f"Received: head={head!r}")
    inputs = keras.Input(input_shape, name="image")
    x = inputs
    for stage, (filters, convs) in enumerate(zip(widths, convs_per_stage),
                                             start=1):
        if stage > 1:
            x = keras.layers.MaxPooling2D(name=f"stage{stage}_pool")(x)
        for j in range(1, convs):
            x = _conv_bn_relu(x, filters, f"stage{stage}_{j}")
        x = _conv_bn_relu(x, filters, f"stage{stage}")
        x = keras.layers.Identity(name=f"stage{stage}_out")(x)
    if head == "average":
        x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    else:
        x = keras.layers.MaxPooling2D(3, 2, name="pool")(x)
        x = keras.layers.Flatten(name="flatten")(x)
    if dense_units:
        x = keras.layers.Dense(dense_units, activation="relu",
                               name="hidden")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name=name)
