"""Every module has its tests: `tests/test_<module>.py`, or the file named
in `TESTED_IN` (subpackage modules tested through their package's public
names). A new module without either fails here."""

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(ROOT, "tests")

# module -> (test file, what it uses when it reaches the module only
# through the Distiller's arguments or a package's public names).
TESTED_IN = {
    "keras_kd/compression/_imports.py": ("test_compression.py", None),
    "keras_kd/compression/fine_tune.py": ("test_compression.py", None),
    "keras_kd/compression/pipeline.py": ("test_compression.py", None),
    "keras_kd/compression/pruning.py": ("test_compression.py", None),
    "keras_kd/compression/quantization.py": ("test_compression.py", None),
    "keras_kd/compression/tflite_eval.py": ("test_compression.py", None),
    "keras_kd/compression/tflite_export.py": ("test_tflite_sequences.py",
                                              None),
    "keras_kd/compression/native/fake_quant.py": (
        "test_native_compression.py", None),
    "keras_kd/compression/native/masks.py": ("test_native_compression.py",
                                             None),
    "keras_kd/compression/native/weights.py": (
        "test_native_compression.py", None),
    "keras_kd/lm/export.py": ("test_lm_export.py", None),
    "keras_kd/lm/on_policy.py": ("test_lm.py", None),
    "keras_kd/lm/sampling.py": ("test_lm.py", None),
    "keras_kd/lm/sequences.py": ("test_lm.py", None),
    "keras_kd/lm/transfer_set.py": ("test_lm.py", None),
    "keras_kd/losses/generalized_jsd.py": ("test_divergences.py", None),
    "keras_kd/losses/hint_mse.py": ("test_hints.py", "hint_pairs"),
    "keras_kd/losses/reverse_kl.py": ("test_divergences.py", None),
    "keras_kd/losses/skew_kl.py": ("test_divergences.py", None),
    "keras_kd/losses/logits_divergence.py": ("test_soft_target_kd.py",
                                             "SoftTargetKD"),
    "keras_kd/multi_worker.py": ("multi_worker_job.py", None),
    "keras_kd/terms/correlation_congruence.py": ("test_method_zoo.py", None),
    "keras_kd/terms/crd.py": ("test_method_zoo.py", None),
    "keras_kd/terms/dist.py": ("test_method_zoo.py", None),
    "keras_kd/terms/dkd.py": ("test_method_zoo.py", None),
    "keras_kd/terms/feature_relation.py": ("test_method_zoo.py", "RKD"),
    "keras_kd/terms/fsp.py": ("test_method_zoo.py", None),
    "keras_kd/terms/layer_pair_term.py": ("test_method_zoo.py", "VID"),
    "keras_kd/terms/logit_standardization.py": ("test_method_zoo.py", None),
    "keras_kd/terms/logit_term.py": ("test_method_zoo.py", "DKD"),
    "keras_kd/terms/pkt.py": ("test_method_zoo.py", None),
    "keras_kd/terms/rkd.py": ("test_method_zoo.py", None),
    "keras_kd/terms/similarity_preserving.py": ("test_method_zoo.py", None),
    "keras_kd/terms/srd.py": ("test_method_zoo.py", None),
    "keras_kd/terms/vid.py": ("test_method_zoo.py", None),
    "keras_kd/terms/attention_maps.py": ("test_attention_map_kd.py",
                                         "attention_pairs"),
    "keras_kd/terms/attention_transfer.py": ("test_attention_transfer.py",
                                             "attention_pairs"),
    "keras_kd/terms/connectors.py": ("test_hints.py", "connector"),
    "keras_kd/terms/hints.py": ("test_hints.py", "hint_pairs"),
    "keras_kd/terms/loss_term.py": ("test_terms.py", "Term"),
    "keras_kd/terms/pair_term.py": ("test_terms.py", "Term"),
    "keras_kd/terms/soft_targets.py": ("test_soft_target_kd.py",
                                       "temperature"),
    "keras_kd/terms/term.py": ("test_terms.py", None),
    "keras_kd/utils/resize.py": ("test_attention_transfer.py", None),
    "keras_kd_examples/datasets/idx.py": ("test_datasets.py", None),
    "keras_kd_examples/datasets/loading.py": ("test_datasets.py", None),
    "keras_kd_examples/fashion_mnist_job.py": ("test_examples.py",
                                               "fashion_mnist_distill"),
    "keras_kd_examples/lm_job.py": ("test_examples.py", "lm_distill"),
    "keras_kd_examples/io.py": ("test_examples.py", "fashion_mnist_distill"),
}


def modules():
    for package in ("keras_kd", "keras_kd_examples"):
        for folder, _, files in os.walk(os.path.join(ROOT, package)):
            for name in sorted(files):
                if name.endswith(".py") and name != "__init__.py":
                    yield os.path.relpath(os.path.join(folder, name), ROOT)


def public_names(path):
    with open(os.path.join(ROOT, path)) as f:
        tree = ast.parse(f.read())
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets
                         if isinstance(t, ast.Name))
    return {n for n in names if not n.startswith("_")} or names


@pytest.mark.parametrize("module", sorted(modules()))
def test_every_module_has_a_test_file_that_uses_it(module):
    name = os.path.splitext(os.path.basename(module))[0]
    test_name, via = TESTED_IN.get(module, (f"test_{name}.py", None))
    test_file = os.path.join(TESTS, test_name)
    assert os.path.exists(test_file), (
        f"{module} has no tests/test_{name}.py and no entry in TESTED_IN")
    with open(test_file) as f:
        text = f.read()
    dotted = module[:-3].replace("/", ".")
    used = dotted in text or any(n in text for n in public_names(module))
    assert used or (via and via in text), (
        f"{test_name} uses nothing from {module}")
