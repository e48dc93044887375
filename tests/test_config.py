
import pytest

from pipeline import config

SCHEMA = config.SCHEMAS_DIR / "census" / "schema.pbtxt"


def user_toml(extra: str = "", dataset: str = "") -> str:
    return f"""
[dataset]
name = "mine"
source = "csv"
csv_dir = "csvs"
schema = "{SCHEMA}"
numeric = ["age"]
categorical = ["sex", "race"]
label = "income"
sensitive = "sex"
slices = [["sex"], ["sex", "race"]]
{dataset}
{extra}
"""


def test_presets_load_and_differ():
    census, taxi = config.preset("census"), config.preset("taxi")
    assert census.dataset.label == "income" and census.dataset.sensitive == "sex"
    assert census.dataset.groups == ("Female", "Male") and census.mindiff.weight > 0
    assert census.distillation.enabled and census.mindiff.label == 0
    assert ("sex", "race") in census.dataset.slices
    assert taxi.dataset.label == "big_tipper"
    assert set(census.dataset.features).isdisjoint(taxi.dataset.features)
    assert census.dataset.schema_file.is_file() and taxi.dataset.schema_file.is_file()


def test_user_config_resolves_paths_relative_to_the_file(write, tmp_path):
    path = write("cfg/mine.toml", user_toml("[training]\ntrain_steps = 10\nhidden_units = [4]"))
    cfg = config.load(path, output_dir=tmp_path / "out", sample=500)
    assert cfg.dataset.csv_dir == (tmp_path / "cfg" / "csvs").resolve()
    assert cfg.training.train_steps == 10 and cfg.training.hidden_units == (4,)
    assert cfg.pipeline_root == (tmp_path / "out" / "root").resolve()
    assert cfg.sample == 500


def test_data_dir_switches_a_preset_to_csv(tmp_path):
    cfg = config.preset("census", data_dir=tmp_path)
    assert cfg.dataset.source == "csv" and cfg.dataset.csv_dir == tmp_path.resolve()


@pytest.mark.parametrize("dataset_extra, extra, field", [
    ("", "[training]\ntrain_steps = -5", "training.train_steps"),
    ("", "[training]\ntrain_steps = \"many\"", "training.train_steps"),
    ("", "[training]\nhidden_units = []", "training.hidden_units"),
    ("", "[training]\nlearning_rate = 3", "training.learning_rate"),
    ("", "[training]\nbogus = 1", "training.bogus"),
    ("", "[evaluation]\nmin_auc = 1.5", "evaluation.min_auc"),
    ("", "[pipeline]\nbeam_args = \"--runner=X\"", "pipeline.beam_args"),
    ("", "[nonsense]\nx = 1", "nonsense"),
    ("colour = 'red'", "", "dataset.colour"),
    ("groups = ['Female', 'Male']", "[mindiff]\nweight = -1.0", "mindiff.weight"),
    ("groups = ['Female', 'Male']", "[mindiff]\nkernel = 'cosine'", "mindiff.kernel"),
    ("groups = ['Female', 'Male']", "[mindiff]\nlabel = 2", "mindiff.label"),
    ("", "[distillation]\nalpha = 1.5", "distillation.alpha"),
    ("", "[distillation]\ntemperature = 0", "distillation.temperature"),
    ("", "[distillation]\nenabled = 'yes'", "distillation.enabled"),
    ("", "[evaluation]\nmax_fpr_gap = -0.1", "evaluation.max_fpr_gap"),
    ("groups = ['Female']", "", "dataset.groups"),
    ("groups = ['Male', 'Male']", "", "dataset.groups"),
    ("", "[mindiff]\nweight = 1.0", "dataset.groups"),  # MinDiff on, no groups
    ("", "[distillation]\nmindiff_weight = 0.3", "dataset.groups"),  # on the student only
    ("groups = ['Female', 'Male']", "[distillation]\nmindiff_kernel = 'mmd'",
     "distillation.mindiff_kernel"),
    ("", "[release]\npush_policy = 'yolo'", "release.push_policy"),
    ("", "[release]\ncanary_steps = [50, 25, 100]", "release.canary_steps"),
    ("", "[release]\ncanary_steps = [5, 50]", "release.canary_steps"),  # never reaches 100 %
    ("", "[release]\nmin_requests = 2", "release.min_requests"),
])
def test_invalid_values_name_the_field(write, dataset_extra, extra, field):
    path = write("bad.toml", user_toml(extra, dataset_extra))
    with pytest.raises(config.ConfigError, match=f"'{field}'"):
        config.load(path)


def test_the_students_mindiff_follows_the_teachers_unless_set(write):
    on = config.load(write("on.toml", user_toml("[mindiff]\nweight = 1.0",
                                                 "groups = ['Female', 'Male']")))
    assert on.distillation.mindiff_weight == 0.3 and on.distillation.mindiff_kernel == "rate_gap"
    off = config.load(write("off.toml", user_toml()))  # no groups, no MinDiff: no student MinDiff
    assert off.mindiff.weight == 0 and off.distillation.mindiff_weight == 0
    mine = config.load(write("mine.toml", user_toml(
        "[mindiff]\nweight = 0.0\n[distillation]\nmindiff_weight = 0.5",
        "groups = ['Female', 'Male']")))
    assert mine.distillation.mindiff_weight == 0.5


@pytest.mark.parametrize("old, new, field", [
    ('sensitive = "sex"', 'sensitive = "age"', "dataset.sensitive"),
    ('label = "income"', 'label = "age"', "dataset.label"),
    ('slices = [["sex"], ["sex", "race"]]', 'slices = [["zip"]]', "dataset.slices"),
    ('source = "csv"', 'source = "s3"', "dataset.source"),
    ('name = "mine"', 'name = "my data!"', "dataset.name"),
    ('numeric = ["age"]', 'numeric = ["age-years"]', "dataset.numeric"),
    ('csv_dir = "csvs"', '', "dataset.csv_dir"),
])
def test_invalid_dataset_fields(write, old, new, field):
    path = write("bad.toml", user_toml().replace(old, new))
    with pytest.raises(config.ConfigError, match=f"'{field}'"):
        config.load(path)


def test_missing_schema_and_bad_toml_and_sample(write, tmp_path):
    with pytest.raises(config.ConfigError, match="dataset.schema"):
        config.load(write("a.toml", user_toml().replace(str(SCHEMA), "nope.pbtxt")))
    with pytest.raises(config.ConfigError, match="not valid TOML"):
        config.load(write("b.toml", "[dataset\nname="))
    with pytest.raises(config.ConfigError, match="not found"):
        config.load(tmp_path / "absent.toml")
    with pytest.raises(config.ConfigError, match="'sample'"):
        config.preset("census", sample=5)
    with pytest.raises(config.ConfigError, match="unknown dataset 'iris'"):
        config.preset("iris")
    with pytest.raises(config.ConfigError, match="'data'"):
        config.preset("census", data_dir=tmp_path / "missing")


def test_fairness_thresholds_are_numbers_in_the_unit_interval(write):
    cfg = config.load(write("ok.toml", user_toml("[evaluation]\nfairness_thresholds = [0.25, 0.5]")))
    assert cfg.evaluation.fairness_thresholds == (0.25, 0.5)
    with pytest.raises(config.ConfigError, match="'evaluation.fairness_thresholds'"):
        config.load(write("bad.toml", user_toml("[evaluation]\nfairness_thresholds = [1.5]")))


def test_confidence_intervals_choose_tfmas_method_and_default_to_off(write):
    import tensorflow_model_analysis as tfma

    from pipeline import eval_config

    default = config.load(write("d.toml", user_toml("")))
    assert eval_config.build(default).options.compute_confidence_intervals.value is False
    assert eval_config.fairness_thresholds(default) == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8,
                                                        0.9]
    cfg = config.load(write("b.toml", user_toml(
        '[evaluation]\nconfidence_intervals = "bootstrap"\ndecision_threshold = 0.45')))
    options = eval_config.build(cfg).options
    assert options.compute_confidence_intervals.value is True
    assert options.confidence_intervals.method == \
        tfma.ConfidenceIntervalOptions.POISSON_BOOTSTRAP
    assert 0.45 in eval_config.fairness_thresholds(cfg)
    with pytest.raises(config.ConfigError, match="'evaluation.confidence_intervals'"):
        config.load(write("x.toml", user_toml('[evaluation]\nconfidence_intervals = "yes"')))


def test_the_baseline_model_computes_only_the_auc_it_is_compared_on(write):
    """TFX's Evaluator names the models candidate/baseline when a baseline exists, else "";
    the baseline then gets AUC alone (the change threshold), the candidate every metric."""
    import tensorflow_model_analysis as tfma
    from tensorflow_model_analysis.utils import config_util

    from pipeline import eval_config

    cfg = config.load(write("d.toml", user_toml("")))

    def per_model(has_baseline: bool) -> dict[str, list[str]]:
        ec = config_util.update_eval_config_with_defaults(  # rubber stamp: the first run
            eval_config.build(cfg), has_baseline=has_baseline, rubber_stamp=not has_baseline)
        out: dict[str, list[str]] = {}
        for spec in ec.metrics_specs:
            for name in spec.model_names:
                out.setdefault(name, []).extend(m.class_name for m in spec.metrics)
        return out

    both = per_model(True)
    assert both[tfma.BASELINE_KEY] == ["AUC"]
    assert {"AUC", "ExampleCount", "FairnessIndicators", "CalibrationPlot"} <= \
        set(both[tfma.CANDIDATE_KEY])
    alone = per_model(False)
    assert list(alone) == [""]
    assert sorted(alone[""]) == sorted(both[tfma.CANDIDATE_KEY])  # each metric once


def test_enable_cache_must_be_a_boolean(write):
    cfg = write("c.toml", '[dataset]\nname = "census"\nsource = "census"\nnumeric = ["age"]\n'
                          'label = "income"\n[pipeline]\nenable_cache = "false"\n')
    with pytest.raises(config.ConfigError, match=r"pipeline.enable_cache.*true or false"):
        config.load(cfg)


def test_label_map_needs_two_values_mapped_to_one_and_zero(write):
    base = '[dataset]\nname = "census"\nsource = "census"\nnumeric = ["age"]\nlabel = "income"\n'
    ok = config.load(write("ok.toml", base + 'label_map = {"Yes" = 1, "No" = 0}\n'))
    assert dict(ok.dataset.label_map) == {"Yes": 1, "No": 0}
    with pytest.raises(config.ConfigError, match="dataset.label_map"):
        config.load(write("bad.toml", base + 'label_map = {"Yes" = 1, "No" = 1}\n'))
    with pytest.raises(config.ConfigError, match="dataset.label_map"):
        config.load(write("mixed.toml", base + 'label_map = {"Yes" = 1, "No" = "0"}\n'))


def test_features_are_checked_against_the_schema_and_optional_ones_found(write):
    base = '[dataset]\nname = "census"\nsource = "census"\nlabel = "income"\n'
    cfg = config.load(write("a.toml", base + 'numeric = ["age"]\ncategorical = ["workclass"]\n'))
    assert cfg.dataset.optional == ("workclass",)  # presence min_fraction 0.9 in the schema
    with pytest.raises(config.ConfigError, match=r"feature 'workclass' of type INT or FLOAT"):
        config.load(write("b.toml", base + 'numeric = ["workclass"]\n'))
    with pytest.raises(config.ConfigError, match=r"feature 'nope'.*not in the schema"):
        config.load(write("c.toml", base + 'numeric = ["nope"]\n'))


@pytest.mark.parametrize("name", ["self", "_hidden", "9lives", "a-b"])
def test_names_a_serving_signature_cannot_take_are_refused(write, name):
    cfg = write("n.toml", f'[dataset]\nname = "census"\nsource = "census"\nnumeric = ["{name}"]\n'
                          'label = "income"\n')
    with pytest.raises(config.ConfigError, match="dataset.numeric"):
        config.load(cfg)


def test_output_dir_in_the_file_is_relative_to_the_file_like_csv_dir(write, tmp_path,
                                                                      monkeypatch):
    cfg = write("sub/c.toml", '[dataset]\nname = "census"\nsource = "census"\nnumeric = ["age"]\n'
                              'label = "income"\n[pipeline]\noutput_dir = "out"\n')
    monkeypatch.chdir(tmp_path)  # another working directory than the file's
    assert config.load(cfg).output_dir == (tmp_path / "sub" / "out").resolve()
    assert config.load(cfg, output_dir="cli-out").output_dir == (tmp_path / "cli-out").resolve()


def test_card_table_defaults_from_the_dataset_and_checks_its_fields(write):
    """`[card]` is optional: the intended use is derived from label, sensitive feature and
    groups; the lists must hold texts."""
    cfg = config.load(write("mine.toml", user_toml(dataset="groups = ['Female', 'Male']")))
    assert "'income'" in cfg.card.intended_use and "sex" in cfg.card.intended_use
    assert "'Female' (protected)" in cfg.card.intended_use and cfg.card.owners == ()
    cfg = config.load(write("mine.toml", user_toml(
        '[card]\nintended_use = "Triage only."\nowners = ["ml@example.com"]\n'
        'limitations = ["Old data."]')))
    assert cfg.card.intended_use == "Triage only." and cfg.card.owners == ("ml@example.com",)
    assert cfg.card.limitations == ("Old data.",)
    for bad, field in (('owners = "me"', "card.owners"), ("limitations = ['']", "card.limitations"),
                       ("intended_use = 3", "card.intended_use"), ("bogus = 1", "card.bogus")):
        with pytest.raises(config.ConfigError, match=f"'{field}'"):
            config.load(write("bad.toml", user_toml(f"[card]\n{bad}")))


MYSQL = '[pipeline.mysql]\nhost = "db.example"\ndatabase = "fairway_md"\n'


def test_mysql_table_is_typed_and_the_password_comes_from_the_environment(write, tmp_path,
                                                                          monkeypatch):
    from pipeline import metadata

    monkeypatch.delenv(config.MYSQL_PASSWORD_ENV, raising=False)
    cfg = config.load(write("m.toml", user_toml(MYSQL)), output_dir=tmp_path / "elsewhere")
    assert cfg.output_dir == (tmp_path / "elsewhere").resolve()  # --output still applies
    assert cfg.mysql == config.MySQLConfig(host="db.example", database="fairway_md")
    assert (cfg.mysql.port, cfg.mysql.user) == (3306, "root")
    assert cfg.mysql.password() == ""  # default variable unset: a user without a password
    monkeypatch.setenv(config.MYSQL_PASSWORD_ENV, "from-env")
    conn = metadata.connection_config(cfg).mysql
    assert (conn.host, conn.port, conn.database, conn.user, conn.password) == (
        "db.example", 3306, "fairway_md", "root", "from-env")
    assert "from-env" not in repr(cfg)  # read when the store is opened, never kept

    named = config.load(write("n.toml", user_toml(
        MYSQL + 'port = 3307\nuser = "ml"\npassword_env = "MY_DB_SECRET"\n')))
    assert (named.mysql.port, named.mysql.user) == (3307, "ml")
    with pytest.raises(config.ConfigError, match=r"n.toml.*'pipeline.mysql.password_env'.*"
                                                 r"MY_DB_SECRET is not set"):
        named.mysql.password()
    monkeypatch.setenv("MY_DB_SECRET", "named")
    assert metadata.connection_config(named).mysql.password == "named"


def test_mysql_password_file_is_relative_to_the_config_file(write, tmp_path, monkeypatch):
    monkeypatch.setenv(config.MYSQL_PASSWORD_ENV, "not this one")
    write("cfg/secrets/db.txt", "from-file\n")
    cfg = config.load(write("cfg/m.toml", user_toml(MYSQL + 'password_file = "secrets/db.txt"\n')))
    assert cfg.mysql.password_file == (tmp_path / "cfg" / "secrets" / "db.txt").resolve()
    assert cfg.mysql.password() == "from-file"  # the trailing newline is not part of it
    cfg.mysql.password_file.unlink()
    with pytest.raises(config.ConfigError, match=r"'pipeline.mysql.password_file'.*cannot read"):
        cfg.mysql.password()


def test_mysql_password_in_the_config_file_is_refused_without_echoing_it(write):
    path = write("p.toml", user_toml(MYSQL + 'password = "hunter2"\n'))
    with pytest.raises(config.ConfigError) as e:
        config.load(path)
    message = str(e.value)
    assert str(path) in message and "'pipeline.mysql.password'" in message
    assert config.MYSQL_PASSWORD_ENV in message and "password_file" in message
    assert "hunter2" not in message


@pytest.mark.parametrize("table, field", [
    (MYSQL + 'port = "3306"', "pipeline.mysql.port"),
    (MYSQL + "port = 70000", "pipeline.mysql.port"),
    (MYSQL + 'user = ""', "pipeline.mysql.user"),
    (MYSQL + 'password_env = "NOT A NAME"', "pipeline.mysql.password_env"),
    (MYSQL + 'password_file = "missing.txt"', "pipeline.mysql.password_file"),
    (MYSQL + 'password_file = "m.toml"\npassword_env = "X"', "pipeline.mysql.password_file"),
    (MYSQL + "sslmode = 1", "pipeline.mysql.sslmode"),
    ('[pipeline.mysql]\nhost = "h"\n', "pipeline.mysql.database"),
    ('[pipeline.mysql]\ndatabase = "d"\n', "pipeline.mysql.host"),
    ('[pipeline.mysql]\nhost = "h"\ndatabase = "no-dashes"\n', "pipeline.mysql.database"),
    ('[pipeline]\nmysql = "mysql://h/d"\n', "pipeline.mysql"),
])
def test_mysql_fields_are_checked(write, table, field):
    with pytest.raises(config.ConfigError, match=f"'{field}'"):
        config.load(write("m.toml", user_toml(table + "\n")))
