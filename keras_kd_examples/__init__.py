"""Data and reference models shared by keras_kd's examples, benchmarks and
tests. Not part of the library: `keras_kd` is distillation and compression.

- `keras_kd_examples.datasets`: offline Fashion-MNIST (Debian's IDX files),
  MNIST and CIFAR-10 (TFDS) as `tf.data` pipelines.
- `keras_kd_examples.models`: the reference ResNet teacher and CNN students.
- `keras_kd_examples.fashion_mnist_job`: the main job's recipe, shared by
  `examples/fashion_mnist_distill.py` and `benchmarks/distillation_seeds.py`.
- `keras_kd_examples.timing`: epoch timers of the benchmarks.

Installed with keras_kd (`pip install -e .`), so scripts anywhere import it
without `sys.path` changes.
"""
