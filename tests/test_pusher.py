"""The Pusher does not push a model that is already a version in the serving folder
(pipeline/pusher.py); the e2e test runs it (tests/test_e2e.py, `--from Evaluator`)."""
import pathlib

from pipeline import pusher


def tree(root: pathlib.Path, files: dict[str, bytes]) -> pathlib.Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


MODEL = {"saved_model.pb": b"graph", "variables/variables.data-00000-of-00001": b"w" * 100,
         "assets.extra/tf_serving_warmup_requests": b"warm"}


def test_the_version_with_the_same_bytes_is_found(tmp_path):
    model = tree(tmp_path / "model", MODEL)
    serving = tmp_path / "serving"
    tree(serving / "100", MODEL)
    tree(serving / "200", {**MODEL, "saved_model.pb": b"grapH"})  # same names and sizes
    tree(serving / "300", {**MODEL, "extra.txt": b""})  # one more file
    (serving / "routing.json").write_text("{}")  # the registry's file beside the versions
    assert pusher.same_version(str(model), str(serving)) == "100"


def test_a_changed_byte_or_file_name_is_a_new_model(tmp_path):
    serving = tmp_path / "serving"
    tree(serving / "100", MODEL)
    renamed = {("variables/other" if k.startswith("variables") else k): v
               for k, v in MODEL.items()}
    for i, files in enumerate(({**MODEL, "saved_model.pb": b"grapH"}, renamed)):
        assert pusher.same_version(str(tree(tmp_path / f"m{i}", files)), str(serving)) is None
    assert pusher.same_version(str(tree(tmp_path / "m", MODEL)),
                               str(tmp_path / "no-serving-yet")) is None
