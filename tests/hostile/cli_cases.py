"""Files whose names and metadata attack the terminal: rich markup and control characters (issue 13 item 5).

A tensor called ``a[/]b`` made every command fail ("unexpected MarkupError": a file could make itself
un-inspectable), ``[link=...]`` and ``[black on black]`` rewrote or hid what was shown, and ESC
sequences (clear screen, window title, OSC 52 clipboard writes), C1 controls and bidi overrides were
printed raw. Every command must succeed (expect="ok") and show the names as text, escaped; the runner
checks no raw control character reaches stdout or stderr.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .cases import Case

SOURCE = "issue 13 item 5 (terminal: markup and escape sequences from a file)"

#: Layer names that are rich markup or terminal control sequences, each with what it attacks.
HOSTILE_NAMES = {
    "closing-tag": "a[/]b",                                   # MarkupError: the file cannot be inspected
    "link": "[link=https://evil.example/]ok[/link]",          # a hyperlink to somewhere else
    "hidden": "[black on black]hidden",                       # text made invisible
    "clear-screen": "\x1b[2J\x1b[Hclear",                     # clears what was shown before
    "window-title": "\x1b]0;PWNED\x07title",                  # sets the terminal's window title
    "clipboard": "\x1b]52;c;cm0gLXJmIH4K\x07clip",            # OSC 52: writes the clipboard
    "c1-csi": "c1\x9b31mred",                                 # the one-byte CSI of C1 controls
    "bidi": "rev\u202egnp.exe",                               # right-to-left override: reversed text
    "newline": "line\nfake row",                              # a forged extra line in a table
    "bell-backspace": "bell\x07\x08\x08x",                    # rings and rubs out what came before
}
#: Metadata a file says about itself, with the same attacks in keys and values.
HOSTILE_METADATA = {"note[/]": "[/]\x1b[31mred\x9b", "title": "\x1b]0;PWNED\x07", "bidi\u202e": "x\u202ey"}


def hostile_model(names: dict[str, str] | None = None):
    """A weights-only model with one dense-like layer per hostile name (tensor ``NAME.weight``, ``NAME.bias``)."""
    from weightkit.model import Layer, Model, Tensor

    layers = []
    for index, name in enumerate((names or HOSTILE_NAMES).values()):
        weight = np.full((2, 2), index, dtype="float32")
        bias = np.zeros(2, dtype="float32")
        layers.append(Layer(name, "dense", tensors={
            "weight": Tensor.from_array(f"{name}.weight", weight, role="weight", layout="OI"),
            "bias": Tensor.from_array(f"{name}.bias", bias, role="bias")}))
    return Model(layers=layers, format="state-dict", framework="pytorch")


def _saved(name: str, format: str, metadata: bool = False) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        path = folder / name
        model = hostile_model()
        if metadata:
            from weightkit.formats.safetensors import file as safetensors_file

            safetensors_file.write(model, path, metadata=HOSTILE_METADATA)
        else:
            from weightkit import save

            save(model, path, format)
        return path
    return build


def _one_name(what: str, name: str) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        from weightkit import save

        path = folder / f"{what}.safetensors"
        save(hostile_model({what: name}), path)
        return path
    return build


def _keras(folder: Path) -> Path:
    """A .keras model whose input and layer names attack the terminal (Keras forbids only "/" in a name)."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    inputs = keras.Input((4,), name="in\x1b]0;PWNED\x07[black on black]x\u202e")
    hidden = keras.layers.Dense(3, name="d\x1b[2J[link=https:x]y\x9b")(inputs)
    outputs = keras.layers.Dense(2, name="\x1b]52;c;cm0K\x07[blink]z")(hidden)
    path = folder / "names.keras"
    keras.Model(inputs, outputs).save(path)
    return path


# Each attack on its own where the runner can tell it got through on its own (an unclean error or a raw control
# character); the others (a link, hidden text, bidi, a forged line, rich's silent removal of BEL and BS) are in
# the combined files, and tests/cli/test_hostile_output.py checks that every name is shown escaped.
ALONE = ("closing-tag", "clear-screen", "window-title", "clipboard", "c1-csi")

CASES = [
    Case("cli/markup-and-escapes-safetensors", SOURCE, _saved("names.safetensors", "safetensors", metadata=True),
         expect="ok"),
    Case("cli/markup-and-escapes-torch", SOURCE, _saved("names.pt", "torch"), expect="ok"),
    Case("cli/markup-and-escapes-keras", SOURCE, _keras, expect="ok"),
    *(Case(f"cli/{what}", SOURCE, _one_name(what, HOSTILE_NAMES[what]), expect="ok") for what in ALONE),
]
