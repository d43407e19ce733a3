"""Command-line helpers shared by the example and benchmark scripts."""

import re


def description(doc):
    """The `--help` description of a script: whole sentences from its
    docstring, the `Description:` field of a keras.io-style header or else
    the first paragraph, on one line.

    Example:

    ```python
    parser = argparse.ArgumentParser(description=description(__doc__))
    ```
    """
    text = doc.strip()
    field = re.search(r"^Description:(.*?)(?:\n\S|\n\n|\Z)", text,
                      re.S | re.M)
    paragraph = field.group(1) if field else text.split("\n\n")[0]
    return " ".join(paragraph.split())


def chance_note(accuracies, classes, flag):
    """A line saying that a short mode only proved the script runs, when
    any of `accuracies` (fractions) is within twice chance level; else
    `""`.

    Example:

    ```python
    print(chance_note([0.11, 0.12], classes=10, flag="--quick"))
    ```
    """
    chance = 1.0 / classes
    low = [a for a in accuracies if a < 2 * chance]
    if not low:
        return ""
    return (f"Note: {flag} only proves that the script runs: "
            f"{100 * min(low):.1f}% is near chance ({100 * chance:.1f}% for "
            f"{classes} classes), so these numbers say nothing about "
            f"distillation; run without {flag} for meaningful ones.")
