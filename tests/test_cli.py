import pytest

from runners import cli


def test_unknown_option_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["run", "--frobnicate"])
    assert e.value.code == 2
    assert "unrecognized arguments: --frobnicate" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["run", "--sample", "ten"], "expected a whole number, got 'ten'"),
    (["run", "--sample", "0"], "expected a positive number"),
    (["run", "--dataset", "census", "--config", "x.toml"], "not allowed with argument"),
    (["launch"], "invalid choice: 'launch'"),
])
def test_bad_arguments(capsys, argv, message):
    with pytest.raises(SystemExit):
        cli.main(argv)
    assert message in capsys.readouterr().err


def test_config_errors_exit_2_before_anything_runs(capsys, tmp_path):
    assert cli.main(["run", "--dataset", "iris", "--output", str(tmp_path)]) == 2
    assert "unknown dataset 'iris'" in capsys.readouterr().err
    assert cli.main(["run", "--sample", "50", "--output", str(tmp_path)]) == 2
    assert "'sample'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_status_without_a_run_says_so(capsys, tmp_path):
    assert cli.main(["status", "--output", str(tmp_path)]) == 1
    assert "no metadata store" in capsys.readouterr().err
