"""Version policies and config parsing of the local server (no process needed)."""
import pytest

from serving import manager


@pytest.mark.parametrize("text,policy,wanted", [
    ("latest", ("latest", 1), {30}),
    ("latest:2", ("latest", 2), {20, 30}),
    ("all", ("all",), {10, 20, 30}),
    ("specific:10,99", ("specific", frozenset({10, 99})), {10}),
])
def test_policies_pick_versions_like_tf_serving(text, policy, wanted):
    assert manager.parse_policy(text) == policy
    assert manager.ModelSource("m", "/x", policy).wanted([10, 30, 20]) == wanted


@pytest.mark.parametrize("text", ["latest:0", "newest", "specific:", "all:3", "specific:a"])
def test_bad_policies_are_refused_with_the_expected_forms(text):
    with pytest.raises(ValueError, match="expected latest"):
        manager.parse_policy(text)


def test_config_errors_name_the_file_and_problem(tmp_path):
    bad = tmp_path / "models.config"
    bad.write_text("model_config_list { config { nme: 'x' } }")
    with pytest.raises(ValueError, match=r"models.config: not a ModelServerConfig"):
        manager.sources_from_config(str(bad))
    bad.write_text('model_config_list { config { name: "x" base_path: "/b" '
                   'model_platform: "pytorch" } }')
    with pytest.raises(ValueError, match="model_platform 'pytorch' is not supported"):
        manager.sources_from_config(str(bad))
    bad.write_text("model_config_list { }")
    with pytest.raises(ValueError, match="has no models"):
        manager.sources_from_config(str(bad))
