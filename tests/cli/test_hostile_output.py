"""What weightkit prints for a file whose names and metadata are rich markup and terminal controls (issue 13 item 5),
the ``--limit`` option, and the one-line errors (item 6): on a terminal and piped, for every command."""

from __future__ import annotations

import json
import re
import sys

import pytest

from tests.cli import run
from tests.hostile.cli_cases import HOSTILE_METADATA, HOSTILE_NAMES, hostile_model

# What a name must look like on screen: shown as text, every control character escaped.
SHOWN = {
    "closing-tag": "a[/]b",
    "link": "[link=https://evil.example/]ok[/link]",
    "hidden": "[black on black]hidden",
    "clear-screen": "\\x1b[2J\\x1b[Hclear",
    "window-title": "\\x1b]0;PWNED\\x07title",
    "clipboard": "\\x1b]52;c;cm0gLXJmIH4K\\x07clip",
    "c1-csi": "c1\\x9b31mred",
    "bidi": "rev\\u202egnp.exe",
    "newline": "line\\x0afake row",
    "bell-backspace": "bell\\x07\\x08\\x08x",
}
SGR = re.compile(r"\x1b\[[0-9;]*m")  # rich's own colours on a terminal
RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")


@pytest.fixture(params=["piped", "terminal"])
def screen(request, monkeypatch):
    """Run each test piped and on a (forced) colour terminal, wide enough for whole names."""
    monkeypatch.setenv("COLUMNS", "400")
    if request.param == "terminal":
        monkeypatch.setenv("FORCE_COLOR", "1")
        monkeypatch.delenv("NO_COLOR", raising=False)
        monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    return request.param


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A checkpoint with every hostile name (and hostile metadata), and a head whose names are hostile too."""
    from weightkit import save
    from weightkit.formats.safetensors import file as safetensors_file

    folder = tmp_path_factory.mktemp("hostile_names")
    safetensors_file.write(hostile_model(), folder / "names.safetensors", metadata=HOSTILE_METADATA)
    save(hostile_model({what: f"head {name}" for what, name in HOSTILE_NAMES.items()}), folder / "head.pt")
    save(hostile_model(), folder / "names.pt")
    return folder


def _visible(text: str) -> str:
    """``text`` without rich's colour codes; asserts nothing else in it is a control character."""
    plain = SGR.sub("", text)
    raw = RAW.findall(plain)
    assert not raw, f"raw control characters printed: {sorted(set(raw))!r}"
    return plain


def _shows_every_name(text: str, prefix: str = "") -> None:
    plain = _visible(text)
    missing = [what for what, shown in SHOWN.items() if prefix + shown not in plain]
    assert not missing, f"not shown as text: {missing}"


@pytest.mark.parametrize("view", [[], ["--tensors"], ["--tree"]])
def test_inspect_shows_markup_and_controls_as_text(capsys, screen, files, view):
    code, out, err = run(capsys, "inspect", *view, files / "names.safetensors")
    assert code == 0 and not err
    _shows_every_name(out)
    assert "[/]\\x1b[31mred\\x9b" in out and "bidi\\u202e" in _visible(out)  # the metadata too


def test_inspect_json_stays_valid_json_with_controls_escaped(capsys, files):
    code, out, _ = run(capsys, "inspect", "--json", files / "names.safetensors")
    assert code == 0 and not RAW.search(out)
    document = json.loads(out)
    assert {layer["path"] for layer in document["layers"]} == set(HOSTILE_NAMES.values())


def test_diff_and_check_show_names_as_text(capsys, screen, files):
    code, out, err = run(capsys, "diff", files / "names.safetensors", files / "head.pt", "--all")
    assert code in (0, 1) and not err
    _shows_every_name(out)
    _shows_every_name(out, prefix="head ")
    code, out, err = run(capsys, "check", files / "names.safetensors", "--into", files / "head.pt")
    assert code in (0, 1) and not err
    _shows_every_name(out)
    code, out, err = run(capsys, "check", files / "names.pt", files / "head.pt")
    assert code in (0, 1) and not err
    _visible(out)


def test_check_fix_split_and_merge_show_names_as_text(capsys, screen, files, tmp_path):
    code, out, err = run(capsys, "check", files / "names.pt", "--into", files / "head.pt", "--fix", tmp_path / "f.pt")
    assert code in (0, 1) and not err
    _visible(out)
    code, out, err = run(capsys, "split", files / "names.pt", "--head-prefix", HOSTILE_NAMES["window-title"],
                         "--out", tmp_path / "parts")
    assert code == 0 and not err and SHOWN["window-title"] in _visible(out)
    code, out, err = run(capsys, "merge", tmp_path / "parts" / "backbone.pt", tmp_path / "parts" / "head.pt",
                         "-o", tmp_path / "merged.pt", "--ignore-junction")
    assert code == 0 and not err
    _visible(out)


def test_errors_show_names_escaped_on_one_line(capsys, files, tmp_path):
    code, out, err = run(capsys, "merge", files / "names.pt", files / "names.pt", "-o", tmp_path / "m.pt",
                         "--ignore-junction")
    assert code == 2 and not out and len(err.splitlines()) == 1
    assert "\\x1b]0;PWNED\\x07title" in _visible(err)
    code, _, err = run(capsys, "inspect", tmp_path / "gone\x1b]0;PWNED\x07\u202e.pt")
    assert code == 2 and len(err.splitlines()) == 1 and "gone\\x1b]0;PWNED\\x07\\u202e.pt" in _visible(err)


def test_convert_shows_keras_names_as_text(capsys, screen, tmp_path):
    keras = pytest.importorskip("keras")
    inputs = keras.Input((4,), name="in\x1b]0;PWNED\x07[black on black]x")
    outputs = keras.layers.Dense(2, name="d\x1b[2J[link=https:x]y\u202e")(inputs)
    keras.Model(inputs, outputs).save(tmp_path / "k.keras")
    code, out, err = run(capsys, "convert", tmp_path / "k.keras", "-o", tmp_path / "k.onnx")
    assert code == 0 and not err
    shown = _visible(out)
    assert "in\\x1b]0;PWNED\\x07[black on black]x" in shown and "d\\x1b[2J[link=https:x]y\\u202e" in shown
    code, out, _ = run(capsys, "inspect", tmp_path / "k.onnx")
    assert code == 0 and "d\\x1b[2J[link=https:x]y\\u202e" in _visible(out)


# ---- --limit ------------------------------------------------------------------------------------------


def test_limit_option_is_in_help(capsys):
    with pytest.raises(SystemExit):
        run(capsys, "--help")
    out = capsys.readouterr().out
    assert "--limit NAME=N" in out and "pickle_opcodes" in out and "entries" in out


def test_a_lowered_limit_refuses_in_one_line_naming_it_and_a_raised_one_passes(capsys, files, monkeypatch):
    code, _, err = run(capsys, "--limit", "pickle_opcodes=5", "inspect", files / "names.pt")
    assert code == 2 and len(err.splitlines()) == 1
    assert "'pickle_opcodes'" in err and "--limit pickle_opcodes=N" in err
    code, _, err = run(capsys, "inspect", files / "names.pt", "--limit", "pickle_opcodes=5")  # after the command too
    assert code == 2 and "'pickle_opcodes'" in err
    monkeypatch.setenv("WEIGHTKIT_MAX_PICKLE_OPCODES", "5")
    code, out, err = run(capsys, "--limit", "pickle_opcodes=1_000_000", "inspect", files / "names.pt")
    assert code == 0 and not err and "parameters" in out
    from weightkit import limits

    assert limits.PICKLE_OPCODES.value == 5  # the option holds for the one command only


@pytest.mark.parametrize("setting", ["bogus=5", "entries", "entries=x", "entries=-1", "entries=1e6", "=5"])
def test_bad_limit_usage_is_one_line_exit_2(capsys, files, setting):
    code, out, err = run(capsys, "--limit", setting, "inspect", files / "names.pt")
    assert code == 2 and not out and len(err.splitlines()) == 1 and "error:" in err


# ---- MemoryError ----------------------------------------------------------------------------------------


def test_memory_error_from_a_file_is_one_unsafe_file_line(capsys, files, monkeypatch):
    from weightkit.cli import inspect_cmd

    def allocate(args):
        raise MemoryError("Unable to allocate 64.0 GiB for an array with shape (17179869184,)")

    monkeypatch.setattr(inspect_cmd, "run", allocate)
    code, out, err = run(capsys, "inspect", files / "names.pt")
    assert code == 2 and not out and len(err.splitlines()) == 1
    assert "more memory than this machine has" in err and "64.0 GiB" in err and "Traceback" not in err
    with pytest.raises(MemoryError):
        run(capsys, "--debug", "inspect", files / "names.pt")


def test_tensor_read_turns_memory_error_into_unsafe_file_error():
    from weightkit import Tensor, UnsafeFileError

    def allocate():
        raise MemoryError("Unable to allocate 64.0 GiB")

    tensor = Tensor("huge", (2**34,), "float32", loader=allocate)
    with pytest.raises(UnsafeFileError, match="'huge'.*more memory") as raised:
        tensor.read()
    assert isinstance(raised.value.__cause__, MemoryError)


# ---- the one console ------------------------------------------------------------------------------------


def test_the_console_reads_no_markup_and_lets_no_control_through(capsys, screen):
    from rich.table import Table
    from rich.text import Text

    from weightkit.cli.render import console, safe, styled

    out = console()
    table = Table()
    table.add_column("[bold]name[/]")
    table.add_row("[/]\x1b]0;t\x07")
    out.print("[red]plain[/red] \x1b[2J", table, Text("raw \x1b]52;c;x\x07 text"), styled(("ok", "bold"), "\u202e"))
    shown = _visible(capsys.readouterr().out)
    assert "[red]plain[/red] \\x1b[2J" in shown and "[bold]name[/]" in shown and "[/]\\x1b]0;t\\x07" in shown
    assert "raw \\x1b]52;c;x" in shown and "ok\\u202e" in shown  # (rich itself drops a BEL in a Text)
    assert safe("a\nb\tc\x85\u2066") == "a\\x0ab\\x09c\\x85\\u2066"
