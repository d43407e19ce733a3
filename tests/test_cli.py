"""The scripts' command-line helpers."""

from keras_kd_examples.cli import chance_note
from keras_kd_examples.cli import description

HEADER = '''
Title: Something long
    on two lines
Description: The first sentence, wrapped
    onto a second line. And a second one.

## What this does
'''


def test_description_is_whole_sentences_on_one_line():
    assert description(HEADER) == ("The first sentence, wrapped onto a "
                                   "second line. And a second one.")
    assert description("Plain first paragraph,\nwrapped.\n\nMore.") == (
        "Plain first paragraph, wrapped.")


def test_chance_note_only_near_chance():
    assert chance_note([0.9, 0.85], 10, "--quick") == ""
    note = chance_note([0.9, 0.12], 10, "--quick")
    assert "12.0% is near chance (10.0% for 10 classes)" in note
    assert note.endswith("run without --quick for meaningful ones.")
