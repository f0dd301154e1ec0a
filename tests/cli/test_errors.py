"""Exit codes (hrvs_ray/cli/errors.py): a UserError is exit 2 with its message and no traceback,
and only cli.main chooses it (the hierarchy itself: tests/shared/test_errors.py)."""
from __future__ import annotations

from hrvs_ray.cli import EXIT_BAD_INPUT, main
from tests.helpers import REPO


def test_a_user_error_exits_2_with_its_message(tmp_path, capsys):
    sweep = tmp_path / "bad.yaml"
    sweep.write_text("name: x\ntraining: {steps: -1}\n")
    assert main(["plan", str(sweep)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("hrvs-ray: error: ") and "Traceback" not in err


def test_a_bad_flag_is_a_user_error(tmp_path, capsys):
    assert main(["compare", str(tmp_path), str(tmp_path), "--threshold", "-3"]) == EXIT_BAD_INPUT
    assert "--threshold must be a percentage" in capsys.readouterr().err


def test_exit_codes_are_chosen_in_one_place():
    """The commands raise UserError; only cli.main turns it into exit 2."""
    text = (REPO / "hrvs_ray" / "cli" / "commands.py").read_text()
    assert "EXIT_BAD_INPUT" not in text


def test_a_bad_data_parallel_scope_exits_2_naming_key_and_grammar(tmp_path, capsys):
    import json

    from hrvs_ray.scopes import SCOPE_HELP
    from tests.helpers import tiny_sweep_dict
    sweep = tmp_path / "bad.yaml"
    sweep.write_text(json.dumps(tiny_sweep_dict(tmp_path, scopes=["node", "2*cores:"])))   # JSON is YAML
    assert main(["plan", str(sweep)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert f"scopes[1]: {SCOPE_HELP}" in err and "Traceback" not in err
