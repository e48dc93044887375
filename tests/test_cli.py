import re

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


@pytest.mark.parametrize("argv,message", [
    (["serve", "--label", "canary"], "--label 'canary': expected NAME=VERSION"),
    (["serve", "--version-policy", "newest"], "expected latest[:N], all or specific"),
    (["serve", "--canary-fraction", "1.5"], "--canary-fraction must be between 0 and 1"),
    (["serve", "--shadow-label", "canary"], "--shadow-label needs --request-log-dir"),
    (["serve", "--model-config-file", "x.config", "--label", "a=1"], "apply to --model-dir"),
])
def test_serve_refuses_bad_options_before_loading_anything(capsys, argv, message):
    assert cli.main(argv) == cli.EXIT_USAGE
    assert message in capsys.readouterr().err


def test_predict_names_the_file_line_and_server_problems(capsys, tmp_path):
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"age": 30}\n{"age": \n')
    assert cli.main(["predict", str(rows), "--model", "m"]) == cli.EXIT_FAILED
    assert "rows.jsonl:2: not JSON" in capsys.readouterr().err
    rows.write_text('{"age": 30}\n')
    assert cli.main(["predict", str(rows), "--model", "m", "--port", "1"]) == cli.EXIT_FAILED
    assert "REST 127.0.0.1:1: ConnectionRefusedError" in capsys.readouterr().err
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("age,sex\n30,Male\n40\n")
    assert cli.main(["predict", str(ragged), "--model", "m"]) == cli.EXIT_FAILED
    assert "ragged.csv: row 2 (after the header) has a different number" in \
        capsys.readouterr().err
    empty = tmp_path / "empty.csv"
    empty.write_text("age,sex\n")
    assert cli.main(["predict", str(empty), "--model", "m"]) == cli.EXIT_FAILED
    assert "empty.csv: no rows" in capsys.readouterr().err


CENSUS_HEADER = ("age,workclass,fnlwgt,education,education_num,marital_status,occupation,"
                 "relationship,race,sex,capital_gain,capital_loss,hours_per_week,native_country,"
                 "income\n")
CENSUS_ROW = ("39,State-gov,77516,Bachelors,13,Never-married,Adm-clerical,Not-in-family,White,"
              "Male,2174,0,40,United-States,0\n")


@pytest.mark.parametrize("name, content, message", [
    ("garbage.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", r"garbage.csv: line \d+"),
    ("empty.csv", b"", "empty.csv: empty file"),
    ("header.csv", CENSUS_HEADER.encode(), "header.csv: a header and no data rows"),
    ("mixed.csv", (CENSUS_HEADER + CENSUS_ROW).encode()
     + CENSUS_ROW.replace("State-gov", "Staté-gov").encode("latin-1"),
     "mixed.csv: line 3, column 8: byte 0xe9 is not UTF-8"),
])
def test_corrupted_data_stops_before_anything_runs_naming_the_file(
        capsys, tmp_path, name, content, message):
    data = tmp_path / "data"
    data.mkdir()
    (data / name).write_bytes(content)
    assert cli.main(["run", "--data", str(data), "--output", str(tmp_path / "out"),
                     "--sample", "100"]) == cli.EXIT_FAILED
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert "Traceback" not in err and len(err.splitlines()) <= 2
    assert not (tmp_path / "out" / "metadata.sqlite").exists()


def test_serve_sources_from_flags_need_no_config_when_dir_and_name_are_given(tmp_path):
    from runners import serve_cmd

    args = cli.parser().parse_args(["serve", "--model-dir", str(tmp_path), "--model-name", "m",
                                    "--label", "stable=1", "--label", "canary=2"])
    [source] = serve_cmd.model_sources(args, config=lambda: pytest.fail("config was read"))
    assert (source.name, source.base_path) == ("m", str(tmp_path))
    assert source.policy == ("specific", frozenset({1, 2}))
    assert dict(source.labels) == {"stable": 1, "canary": 2}


def test_serve_sources_default_to_the_configs_pusher_output(tmp_path):
    from pipeline import config
    from runners import serve_cmd

    cfg = config.preset("census", output_dir=tmp_path)
    [source] = serve_cmd.model_sources(cli.parser().parse_args(["serve"]), config=lambda: cfg)
    assert (source.name, source.base_path) == ("census", str(cfg.serving_dir / "census"))
    assert source.policy == ("latest", 1) and source.labels == ()


def test_card_without_a_run_says_so_and_a_failed_card_only_warns_after_a_run(capsys, tmp_path):
    assert cli.main(["card", "--dataset", "census", "--output", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "no metadata store" in err and "Traceback" not in err
    from pipeline import config
    from runners import card_cmd

    line = card_cmd.after_run(config.preset("census", output_dir=tmp_path))
    assert line.startswith("warning: the model card was not written: ")
    assert not (tmp_path / "cards").exists()
