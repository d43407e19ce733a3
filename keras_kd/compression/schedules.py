"""Pruning schedules: small objects that know how to ramp the sparsity.

`prune(schedule=...)` takes one of these, a name (`"polynomial"`,
`"constant"`), or a TF-MOT `PruningSchedule` used as it is. Ours are
written in fractions of the fine-tuning, so the same object serves any
dataset size; `build(target_sparsity, steps)` turns one into TF-MOT's.

Example:

```python
from keras_kd.compression import PolynomialRamp, prune

pruned = prune(student, train_ds, target_sparsity=0.75,
               schedule=PolynomialRamp(ramp=0.5, updates=10))
```
"""

from keras_kd.compression._imports import tfmot
from keras_kd.utils.validation import check_positive
from keras_kd.utils.validation import check_unit_interval


def _check_updates(updates):
    if isinstance(updates, bool) or not isinstance(updates, int) or (
            updates < 1):
        raise ValueError("Argument `updates` must be a positive integer. "
                         f"Received: updates={updates!r}")
    return updates


class PolynomialRamp:
    """Sparsity from 0 to the target along `1 − (1 − t)³` (Zhu & Gupta,
    "To prune, or not to prune", 2017) over the first `ramp` fraction of
    the fine-tuning steps, updated `updates` times; the rest fine-tunes at
    the target.

    Args:
        ramp: fraction of the steps over which sparsity grows, in (0, 1].
        updates: how many times the masks are recomputed during the ramp.
        power: exponent of the polynomial (3 in the paper).
    """

    def __init__(self, ramp=0.7, updates=20, power=3):
        self.ramp = check_unit_interval("ramp", ramp)
        if self.ramp == 0:
            raise ValueError("Argument `ramp` must be > 0. Received: ramp=0")
        self.updates = _check_updates(updates)
        self.power = check_positive("power", power)

    def build(self, target_sparsity, steps):
        end_step = max(1, int(self.ramp * steps))
        return tfmot().sparsity.keras.PolynomialDecay(
            initial_sparsity=0.0, final_sparsity=target_sparsity,
            begin_step=0, end_step=end_step, power=self.power,
            frequency=max(1, end_step // self.updates))

    def sparsity_at(self, step, target_sparsity, steps):
        """The sparsity to prune to before fine-tuning step `step` (from 0),
        or `None` when the masks stay as they are (Keras-native pruning).
        The last update of the ramp lands on the target exactly."""
        end_step = max(1, int(self.ramp * steps))
        frequency = max(1, end_step // self.updates)
        if step > end_step or (step % frequency and step != end_step):
            return None
        progress = min(1.0, step / end_step)
        return target_sparsity * (1.0 - (1.0 - progress) ** self.power)

    def get_config(self):
        return {"ramp": self.ramp, "updates": self.updates,
                "power": self.power}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class ConstantSparsity:
    """The target sparsity from the first step, masks recomputed `updates`
    times over the fine-tuning.

    Args:
        updates: how many times the masks are recomputed.
    """

    def __init__(self, updates=20):
        self.updates = _check_updates(updates)

    def build(self, target_sparsity, steps):
        return tfmot().sparsity.keras.ConstantSparsity(
            target_sparsity, begin_step=0,
            frequency=max(1, steps // self.updates))

    def sparsity_at(self, step, target_sparsity, steps):
        """The target every `steps // updates` steps, else `None`."""
        return None if step % max(1, steps // self.updates) else (
            target_sparsity)

    def get_config(self):
        return {"updates": self.updates}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


_NAMED = {"polynomial": PolynomialRamp, "constant": ConstantSparsity}


def native_schedule(schedule, target_sparsity, steps):
    """`step -> sparsity or None` for Keras-native pruning, from the same
    `schedule=` values `prune` takes (a TF-MOT `PruningSchedule` is asked
    step by step)."""
    schedule = _resolve(schedule)
    if isinstance(schedule, (PolynomialRamp, ConstantSparsity)):
        return lambda step: schedule.sparsity_at(step, target_sparsity, steps)
    tfmot_schedule = pruning_schedule(schedule, target_sparsity, steps)

    def ask(step):
        should, sparsity = tfmot_schedule(step)
        return float(sparsity) if bool(should) else None

    return ask


def _resolve(schedule):
    if isinstance(schedule, str):
        if schedule not in _NAMED:
            raise ValueError(
                f"Argument `schedule` must be one of {sorted(_NAMED)}, a "
                "keras_kd.compression schedule or a TF-MOT PruningSchedule. "
                f"Received: schedule={schedule!r}")
        schedule = _NAMED[schedule]()
    return schedule


def pruning_schedule(schedule, target_sparsity, steps):
    """TF-MOT's schedule for `prune(schedule=...)`.

    Raises:
        TypeError: for anything but a name, one of our schedules or a TF-MOT
            `PruningSchedule`, naming what was received.
    """
    schedule = _resolve(schedule)
    if isinstance(schedule, (PolynomialRamp, ConstantSparsity)):
        return schedule.build(target_sparsity, steps)
    if isinstance(schedule, tfmot().sparsity.keras.PruningSchedule):
        return schedule
    raise TypeError(
        "Argument `schedule` must be a name, a keras_kd.compression "
        "schedule (PolynomialRamp, ConstantSparsity) or a TF-MOT "
        f"PruningSchedule. Received: schedule={schedule!r} of type "
        f"{type(schedule).__name__}")
