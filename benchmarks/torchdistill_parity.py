"""keras_kd's method terms against torchdistill 1.1.5, on the same tensors.

For each method torchdistill implements (RKD, PKT, SPKD, CCKD, FSP, DIST,
logit standardization, VID, CRD with given memories and contrast indices),
random teacher and student tensors go
through the keras_kd term (in `mode="code"` where the paper and
torchdistill differ) and through torchdistill's loss, and the relative
difference is printed. The target is 1e-5. torchdistill and PyTorch run
in another Python (`--torch-python`), since they do not share this
environment: install them there with

    python -m venv /tmp/tdvenv
    /tmp/tdvenv/bin/pip install torch==2.13.0 numpy pyyaml scipy
    /tmp/tdvenv/bin/pip install --no-deps torchdistill==1.1.5

Usage:
    python benchmarks/torchdistill_parity.py \
        --torch-python /tmp/tdvenv/bin/python
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

TORCH_SIDE = r'''
import json, sys
import numpy as np
import torch
from torchdistill.losses import mid_level as m

data = np.load(sys.argv[1])
t = lambda name: torch.tensor(data[name], dtype=torch.float64)
nchw = lambda name: t(name).permute(0, 3, 1, 2)
io = lambda **kw: {k: {"output": v} for k, v in kw.items()}
out = {}
s_io, t_io = io(f=nchw("s_map")), io(f=nchw("t_map"))
out["RKD"] = m.RKDLoss("f", "f", 25.0, 50.0, "mean")(s_io, t_io)
out["PKT"] = m.PKTLoss("e", "output", "e", "output")(
    io(e=t("s_vec")), io(e=t("t_vec")))
out["SimilarityPreserving"] = m.SPKDLoss("f", "f", "batchmean")(s_io, t_io)
out["CorrelationCongruence"] = m.CCKDLoss(
    "e", "e", {"type": "bilinear"}, "batchmean")(
    io(e=t("s_vec")), io(e=t("t_vec")))
pairs = {"p": {"teacher_first": {"io": "output", "path": "t1"},
               "teacher_second": {"io": "output", "path": "t2"},
               "student_first": {"io": "output", "path": "s1"},
               "student_second": {"io": "output", "path": "s2"},
               "weight": 1.0}}
out["FSP"] = m.FSPLoss(pairs)(io(s1=nchw("s_first"), s2=nchw("s_second")),
                              io(t1=nchw("t_first"), t2=nchw("t_second")))
logits = lambda name: io(z=t(name))
out["DIST"] = m.DISTLoss("z", "output", "z", "output", beta=1.0, gamma=1.0,
                         tau=4.0)(logits("s_logits"), logits("t_logits"))
out["LogitStandardization"] = m.LogitStdKDLoss(
    "z", "output", "z", "output", temperature=2.0, alpha=0.0)(
    logits("s_logits"), logits("t_logits"))
mean, var = t("vid_mean"), t("vid_var")
out["VID"] = m.VIDLoss({"p": {"student": {"io": "output", "path": "s"},
                              "teacher": {"io": "output", "path": "t"},
                              "weight": 1.0}})(
    {"s": {"output": (mean.permute(0, 3, 1, 2), var.permute(0, 3, 1, 2))}},
    {"t": {"output": nchw("t_map")}})
crd = m.CRDLoss("s", "e", "t", input_size=16, output_size=50,
                num_negative_samples=7, num_samples=50)
crd.memory_v1.copy_(t("crd_student_memory").float())
crd.memory_v2.copy_(t("crd_teacher_memory").float())
out_s, out_t = crd.contrast_memory(
    t("crd_v_s").float(), t("crd_v_t").float(),
    torch.tensor(data["crd_index"]), torch.tensor(data["crd_contrast"]))
out["CRD"] = (crd.compute_contrast_loss(out_s)
              + crd.compute_contrast_loss(out_t))
out["CRD memory after the update"] = float(
    crd.memory_v1.sum() + 2 * crd.memory_v2.sum())
print(json.dumps({k: float(v) for k, v in out.items()}))
'''


def tensors(seed=0):
    rng = np.random.default_rng(seed)
    data = _tensors(rng)
    data["crd_contrast"][:, 0] = data["crd_index"]  # the positive first
    return data


def _tensors(rng):
    return {
        "t_map": rng.normal(size=(8, 4, 4, 6)),
        "s_map": rng.normal(size=(8, 4, 4, 3)),
        "t_vec": rng.normal(size=(8, 12)),
        "s_vec": rng.normal(size=(8, 10)),
        "t_first": rng.normal(size=(8, 8, 8, 4)),
        "t_second": rng.normal(size=(8, 4, 4, 5)),
        "s_first": rng.normal(size=(8, 8, 8, 4)),
        "s_second": rng.normal(size=(8, 4, 4, 5)),
        "t_logits": 3 * rng.normal(size=(8, 10)),
        "s_logits": 3 * rng.normal(size=(8, 10)),
        "vid_mean": rng.normal(size=(8, 4, 4, 6)),
        "vid_var": rng.uniform(0.5, 2.0, size=(8, 4, 4, 6)),
        "crd_student_memory": rng.uniform(-0.4, 0.4, size=(50, 16)),
        "crd_teacher_memory": rng.uniform(-0.4, 0.4, size=(50, 16)),
        "crd_v_s": unit(rng.normal(size=(8, 16))),
        "crd_v_t": unit(rng.normal(size=(8, 16))),
        "crd_index": rng.permutation(50)[:8],
        "crd_contrast": np.concatenate([np.zeros((8, 1), int), rng.integers(
            0, 50, (8, 7))], 1),
    }


def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def keras_kd_values(data):
    import keras

    import keras_kd
    from keras_kd.terms import TapValues
    from keras_kd.terms.vid import variational_nll

    terms = keras_kd.terms
    f32 = {k: keras.ops.convert_to_tensor(v.astype("float32"))
           for k, v in data.items()}

    def side(values, logits=None):
        return TapValues(values, {}, logits)

    def value(term, teacher, student):
        return float(keras.ops.convert_to_numpy(term.reduced_loss(teacher,
                                                                  student)))

    maps = (side({"f": f32["t_map"]}), side({"f": f32["s_map"]}))
    logits = (side({}, [f32["t_logits"]]), side({}, f32["s_logits"]))
    crd = terms.CRD("t", "s", num_examples=50, feature_dim=16, negatives=7)
    crd.build({"t": (None, 16)}, {"s": (None, 16)})
    crd.student_memory.assign(f32["crd_student_memory"])
    crd.teacher_memory.assign(f32["crd_teacher_memory"])
    crd_value = float(keras.ops.convert_to_numpy(keras.ops.mean(
        crd.contrast_loss(f32["crd_v_s"], f32["crd_v_t"],
                          keras.ops.convert_to_tensor(data["crd_index"]),
                          keras.ops.convert_to_tensor(
                              data["crd_contrast"])))))
    memory = float(keras.ops.convert_to_numpy(
        keras.ops.sum(crd.student_memory)
        + 2 * keras.ops.sum(crd.teacher_memory)))
    return {
        "CRD": crd_value,
        "CRD memory after the update": memory,
        "RKD": value(terms.RKD("f", "f"), *maps),
        "PKT": value(terms.PKT("e", "e"), side({"e": f32["t_vec"]}),
                     side({"e": f32["s_vec"]})),
        "SimilarityPreserving": value(
            terms.SimilarityPreserving("f", "f", mode="code"), *maps),
        "CorrelationCongruence": value(
            terms.CorrelationCongruence("e", "e", mode="code"),
            side({"e": f32["t_vec"]}), side({"e": f32["s_vec"]})),
        "FSP": value(terms.FSP([(("t1", "t2"), ("s1", "s2"))], mode="code"),
                     side({"t1": f32["t_first"], "t2": f32["t_second"]}),
                     side({"s1": f32["s_first"], "s2": f32["s_second"]})),
        "DIST": value(terms.DIST(temperature=4.0), *logits),
        # torchdistill's soft part has no T²: divide ours by T² = 4.
        "LogitStandardization": value(terms.LogitStandardization(),
                                      *logits) / 4.0,
        "VID": float(keras.ops.convert_to_numpy(keras.ops.mean(
            variational_nll(f32["t_map"], f32["vid_mean"],
                            f32["vid_var"])))),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--torch-python", required=True,
                        help="a Python with torch and torchdistill")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    data = tensors(args.seed)
    ours = keras_kd_values(data)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "tensors.npz")
        np.savez(path, **data)
        script = os.path.join(folder, "torch_side.py")
        with open(script, "w") as f:
            f.write(TORCH_SIDE)
        result = subprocess.run([args.torch_python, script, path],
                                capture_output=True, text=True)
    if result.returncode:
        print(result.stderr[-3000:])
        return 2
    theirs = json.loads(result.stdout.strip().splitlines()[-1])
    print("| method | keras_kd | torchdistill 1.1.5 | relative difference |")
    print("|---|---:|---:|---:|")
    worst = 0.0
    for name, value in ours.items():
        difference = abs(value - theirs[name]) / max(abs(theirs[name]),
                                                     1e-12)
        worst = max(worst, difference)
        print(f"| {name} | {value:.8g} | {theirs[name]:.8g} | "
              f"{difference:.1e} |")
    print(f"\nlargest relative difference {worst:.1e} (target 1e-5)")
    return 0 if worst <= 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main())
