import dataclasses

import pytest

from styleavatar.cli import build_parser, main
from styleavatar.config import PreprocessConfig, field_docs


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    assert "preprocess" in capsys.readouterr().out


def test_every_preprocess_option_is_explained(capsys):
    docs = field_docs(PreprocessConfig)
    assert set(docs) == {f.name for f in dataclasses.fields(PreprocessConfig)}
    with pytest.raises(SystemExit):
        main(["preprocess", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for name in docs:
        assert "--" + name.replace("_", "-") in out
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices["preprocess"]
    for action in sub._actions:
        assert action.help, action.dest


def test_options_override_the_preset():
    from styleavatar.cli import config_from_args
    from styleavatar.config import PREPROCESS_PRESETS

    args = build_parser().parse_args(["preprocess", "v.mp4", "-o", "d", "--preset", "tiny", "--size", "96",
                                      "--no-preview"])
    cfg = config_from_args(args, PREPROCESS_PRESETS[args.preset])
    assert cfg.size == 96 and cfg.preview is False and cfg.render_size == PREPROCESS_PRESETS["tiny"].render_size


def test_help_gives_each_presets_default():
    """`train --help` printed the dataclass's default (a learning rate of 0.002) for a preset that trains at 0.008:
    every option's help must name the value each preset gives it."""
    import re

    from styleavatar.config import MODEL_PRESETS, PREPROCESS_PRESETS, TRAIN_PRESETS

    def shown(value) -> str:
        return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)

    subs = build_parser()._subparsers._group_actions[0].choices
    checked = 0
    for command, presets in (("preprocess", PREPROCESS_PRESETS), ("train", TRAIN_PRESETS), ("train", MODEL_PRESETS)):
        fields = {f.name for f in dataclasses.fields(next(iter(presets.values())))}
        for action in subs[command]._actions:
            if action.dest not in fields:
                continue
            note = re.search(r"\(default: ([^()]*)\)$", action.help).group(1)
            listed = {}
            for part in note.split("; "):
                value, _, names = part.rpartition(" in ")
                for name in names.split(", ") if value else presets:
                    listed[name] = value if value else part
            for name, cfg in presets.items():
                assert listed[name] == shown(getattr(cfg, action.dest)), (command, action.dest, name, note)
            checked += 1
    assert checked >= 60
    lr = next(a for a in subs["train"]._actions if a.dest == "lr").help
    cpu, paper = TRAIN_PRESETS["cpu"].lr, TRAIN_PRESETS["paper"].lr
    assert lr.endswith(f"(default: {cpu} in cpu, small; {paper} in paper, tiny)")


def test_bad_input_exits_nonzero_with_one_line(tmp_path, capsys):
    assert main(["preprocess", str(tmp_path / "nope.mp4"), "-o", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: video not found")


def test_cli_reference_is_up_to_date():
    """docs/cli.md is generated from --help; regenerate it with scripts/cli_reference.py."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, str(root / "scripts/cli_reference.py"), "--check"])
    assert result.returncode == 0, "docs/cli.md is stale: run scripts/cli_reference.py"


def test_every_option_of_every_command_is_explained():
    import argparse

    from styleavatar.config import ModelConfig, TrainConfig

    for cls in (ModelConfig, TrainConfig):
        assert set(field_docs(cls)) == {f.name for f in dataclasses.fields(cls)}, cls
    parser = build_parser()
    for name, sub in parser._subparsers._group_actions[0].choices.items():
        assert sub.description, name
        assert "%%" not in sub.format_help(), f"{name}: a literal %% in the help (argparse escapes only option help)"
        for action in sub._actions:
            assert action.help, (name, action.dest)
            assert action.help == argparse.SUPPRESS or len(action.help) > 8, (name, action.dest)


NETWORK_COMMANDS = ("train", "reenact", "decode", "export", "live", "bench", "distill", "evaluate")


def test_every_command_that_runs_a_network_takes_a_device(capsys):
    import torch

    parser = build_parser()
    for command in NETWORK_COMMANDS:
        with pytest.raises(SystemExit):
            parser.parse_args([command, "--help"])
        assert "--device DEVICE" in capsys.readouterr().out, command
    if not torch.cuda.is_available():  # asking a CPU-only machine for a GPU: one line, exit 2, before any work
        assert main(["bench", "no_such_run", "--device", "cuda"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: --device cuda: PyTorch sees no CUDA device") and "\n" not in err
