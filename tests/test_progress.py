"""The run's console: progress and Fairway's lines only; library noise goes to the log file."""
import logging
import os
import sys
import warnings

import absl.logging
import pytest

from runners import local, progress
from runners.progress import Progress

NATIVE = b"E0000 cuda_dnn.cc:10575] Unable to register cuDNN factory: Attempting to register\n"


@pytest.fixture
def stderr_handler():
    """The console handler TF's import leaves on the root logger (basicConfig style)."""
    handler = logging.StreamHandler(sys.stderr)
    logging.getLogger().addHandler(handler)
    yield handler
    logging.getLogger().removeHandler(handler)


def test_library_noise_goes_to_the_log_and_progress_to_the_console(tmp_path, capfd,
                                                                   stderr_handler):
    log = tmp_path / "logs" / "run-1.log"
    with Progress(log) as p:
        p.begin(["CsvExampleGen", "Trainer"])
        absl.logging.info("Component CsvExampleGen is running.")
        absl.logging.warning("ArtifactQuery.property_predicate is not supported.")
        logging.getLogger("tensorflow").warning("From x.py:225: build_tensor_info is deprecated")
        logging.getLogger("apache_beam.runners.common").error("Columns do not match")
        warnings.warn("pkg_resources is deprecated as an API", UserWarning)
        os.write(2, NATIVE)  # what TensorFlow's C++ code does, bypassing Python
        os.write(1, b"Epoch 1/10\n")
        logging.getLogger("pipeline.components").warning("schema has no 'age' domain")
        print("spark: timed out", file=progress.stderr())
        absl.logging.info("Component CsvExampleGen is finished.")
    out, err = capfd.readouterr()

    assert out.splitlines()[0] == f"Detailed log: {log}"
    assert out.splitlines()[1] == "[1/2] CsvExampleGen ..."
    assert "CsvExampleGen done in" in out.splitlines()[2]
    assert len(out.splitlines()) == 3
    assert err.splitlines() == ["warning: schema has no 'age' domain", "spark: timed out"]
    text = log.read_text()
    for noise in ("property_predicate", "build_tensor_info", "Columns do not match",
                  "pkg_resources", NATIVE.decode().strip(), "Epoch 1/10"):
        assert noise in text
    # afterwards the console and logging are as they were
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "after\n"
    assert p not in logging.getLogger().handlers and progress.stderr() is sys.stderr


def test_a_crash_leaves_its_traceback_in_the_log_not_on_the_console(tmp_path, capfd):
    log = tmp_path / "run.log"
    with pytest.raises(local.RunFailed):
        with Progress(log):
            try:
                raise ValueError("deep inside")
            except ValueError as e:
                raise local.RunFailed("component X failed") from e
    out, err = capfd.readouterr()
    assert out == f"Detailed log: {log}\n" and err == ""
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "ValueError: deep inside" in text


def _chain():
    """Like a failed component: the reason, wrapped with `from` twice; the reason itself was
    raised while handling a detail that does not matter."""
    try:
        try:
            try:
                int("INTT")
            except ValueError:
                raise ValueError("Columns do not match specified csv headers: " + "x, " * 200)
        except ValueError as e:
            raise RuntimeError("Error while running the Beam pipeline") from e
    except RuntimeError as e:
        try:
            raise RuntimeError("Execution 1 failed.") from e
        except RuntimeError as outer:
            return outer


def test_a_failed_component_is_a_few_lines_with_the_root_cause(tmp_path):
    message = local.failure_message("CsvExampleGen", _chain(), tmp_path / "run.log")
    lines = message.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("component CsvExampleGen failed: ValueError: Columns do not match")
    assert lines[0].endswith(" ...") and len(lines[0]) < 400
    assert lines[1] == f"Full log: {tmp_path / 'run.log'}"


def test_a_worker_traceback_quoted_in_a_message_gives_its_last_error():
    quoted = RuntimeError('Error received from SDK harness for instruction 4: Traceback (most '
                          'recent call last):\n  File "x.py", line 1, in f\n    g()\n'
                          "KeyError: 'a'\n\nDuring handling ...\n"
                          "ValueError: could not convert 'forty' to int [while running 'Decode']")
    assert local.root_cause(quoted) == ("ValueError: could not convert 'forty' to int "
                                        "[while running 'Decode']")
    assert local.root_cause(KeyboardInterrupt()) == "KeyboardInterrupt"


def test_fairway_messages_are_kept_whole():
    from pipeline.errors import FairwayError

    message = "candidate did not answer its warmup requests:\n  " + "x" * 400
    try:
        try:
            raise FairwayError(message)
        except FairwayError as e:
            raise RuntimeError("Execution 12 failed.") from e
    except RuntimeError as e:
        assert local.root_cause(e) == f"FairwayError: {message}"
