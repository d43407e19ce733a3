"""Distiller.fit across two worker processes (MultiWorkerMirroredStrategy)
equals one process with two devices; a dead worker stops the other, and a
restart resumes from the chief's backup."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

JOB = os.path.join(os.path.dirname(__file__), "multi_worker_job.py")
TIMEOUT = 240


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ",".join(map(str, ports))


def run_workers(out, *extra, extra_for=None):
    """Runs two workers to the end; returns their exit codes and logs."""
    ports = free_ports(2)
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))}
    env.pop("TF_CONFIG", None)
    processes = [
        subprocess.Popen(
            [sys.executable, JOB, str(out), "worker", str(i), ports, *extra,
             *((extra_for or {}).get(i, []))],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=env)
        for i in range(2)]
    results = []
    try:
        for process in processes:
            output, _ = process.communicate(timeout=TIMEOUT)
            results.append((process.returncode, output))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    return results


def load(out, name):
    with open(os.path.join(out, f"{name}.json")) as f:
        return json.load(f)


@pytest.mark.slow
def test_two_workers_equal_one_process_with_two_devices(tmp_path):
    mirrored = subprocess.run(
        [sys.executable, JOB, str(tmp_path), "mirrored"],
        capture_output=True, text=True, timeout=TIMEOUT)
    assert mirrored.returncode == 0, mirrored.stderr[-3000:]
    os.remove(tmp_path / "student.keras")
    for code, output in run_workers(tmp_path):
        assert code == 0, output[-3000:]
    single = load(tmp_path, "mirrored")
    workers = [load(tmp_path, f"worker{i}") for i in range(2)]
    assert [w["chief"] for w in workers] == [True, False]
    for worker in workers:
        np.testing.assert_allclose(worker["weights"], single["weights"],
                                   atol=1e-4)
        for key, values in single["history"].items():
            np.testing.assert_allclose(worker["history"][key], values,
                                       rtol=1e-4)
        assert worker["evaluation"]["loss"] == pytest.approx(
            single["evaluation"]["loss"], rel=1e-4)
    # The chief wrote the student; it is the trained one.
    import keras

    student = keras.models.load_model(tmp_path / "student.keras")
    np.testing.assert_allclose(
        np.concatenate([w.ravel() for w in student.get_weights()]),
        single["weights"], atol=1e-4)


@pytest.mark.slow
def test_a_dead_worker_stops_the_other_and_a_restart_resumes(tmp_path):
    backup = tmp_path / "backup"
    results = run_workers(tmp_path, "--backup", str(backup),
                          extra_for={1: ["--die-at", "1"]})
    (code0, output0), (code1, _) = results
    assert code1 == 17
    assert code0 not in (0, None), output0[-2000:]  # it stopped, with error
    metadata = json.loads((backup / "training_metadata.json").read_text())
    assert metadata == {"epoch": 1, "weights": "epoch-1.weights.h5"}
    assert sorted(os.listdir(backup)) == ["epoch-1.weights.h5",
                                          "training_metadata.json"]
    for code, output in run_workers(tmp_path, "--backup", str(backup)):
        assert code == 0, output[-3000:]
    resumed = [load(tmp_path, f"worker{i}") for i in range(2)]
    assert [r["epochs_run"] for r in resumed] == [2, 2]  # epochs 2 and 3
    np.testing.assert_allclose(resumed[0]["weights"], resumed[1]["weights"])
    # The same as never stopping: one process, two devices, three epochs.
    single = subprocess.run(
        [sys.executable, JOB, str(tmp_path), "mirrored"],
        capture_output=True, text=True, timeout=TIMEOUT)
    assert single.returncode == 0, single.stderr[-3000:]
    np.testing.assert_allclose(resumed[0]["weights"],
                               load(tmp_path, "mirrored")["weights"],
                               atol=1e-4)
