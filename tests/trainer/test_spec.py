"""The job spec: shape, defaults, files, and one clear error per impossible field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.trainer.conftest import write_jsonl
from trainer import SMOLLM2_ID, JobSpec, SpecError
from trainer.spec import DEFAULT_LEARNING_RATES


def errors_of(spec: JobSpec, **kwargs) -> dict[str, str]:
    with pytest.raises(SpecError) as caught:
        spec.validate(**kwargs)
    return caught.value.errors


def test_a_spec_round_trips_through_a_dict():
    spec = JobSpec.from_dict({"method": "dpo", "dataset": {"train": ["a.jsonl"]}, "lora": {"r": 8}})
    assert spec.base_model == SMOLLM2_ID
    assert spec.learning_rate == DEFAULT_LEARNING_RATES["dpo"]
    again = JobSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec
    assert again.lora.r == 8 and again.lora.target_modules == "all-linear"


def test_default_learning_rates_are_big_enough_to_move_a_lora_run():
    for method in ("sft", "dpo", "kto"):
        assert 5e-6 <= JobSpec(method=method).learning_rate <= 5e-4


def test_it_loads_yaml_and_json_files_with_paths_relative_to_the_file(
    tmp_path, data_files, tiny_model
):
    folder = tmp_path / "specs"
    folder.mkdir()
    (folder / "train.jsonl").write_text(Path(data_files["dpo"]).read_text())
    (folder / "job.yaml").write_text(
        f"method: dpo\nbase_model: {tiny_model}\ndataset:\n  train: train.jsonl\n"
        "learning_rate: 5e-5\nbeta: 0.2\nlora: {{r: 4, target_modules: [q_proj, v_proj]}}\n".replace(
            "{{", "{"
        ).replace("}}", "}")
    )
    spec = JobSpec.from_file(folder / "job.yaml").validate()
    assert spec.dataset.train == [str(folder / "train.jsonl")]
    assert spec.output_dir == str(folder / "var/training/run")
    assert spec.learning_rate == 5e-5 and spec.beta == 0.2
    assert spec.lora.target_modules == ["q_proj", "v_proj"]
    (folder / "job.json").write_text(
        json.dumps({**spec.to_dict(), "dataset": {"train": ["train.jsonl"]}})
    )
    assert JobSpec.from_file(folder / "job.json").dataset.train == spec.dataset.train


def test_an_unreadable_spec_file_is_one_error(tmp_path):
    (tmp_path / "bad.yaml").write_text("method: [unclosed")
    with pytest.raises(SpecError) as caught:
        JobSpec.from_file(tmp_path / "bad.yaml")
    assert list(caught.value.errors) == ["spec"]
    with pytest.raises(SpecError, match="cannot read"):
        JobSpec.from_file(tmp_path / "missing.json")


def test_unknown_fields_and_wrong_types_are_named():
    with pytest.raises(SpecError) as caught:
        JobSpec.from_dict(
            {"methd": "sft", "batch_size": "four", "lora": {"rank": 4}, "epochs": True}
        )
    errors = caught.value.errors
    assert errors["methd"].startswith("is not a spec field (did you mean method?)")
    assert "whole number" in errors["batch_size"]
    assert "is not a spec field" in errors["lora.rank"]
    assert "number" in errors["epochs"]


@pytest.mark.parametrize(
    ("fields", "path", "phrase"),
    [
        ({"method": "ppo"}, "method", "one of sft, dpo, kto"),
        ({"lora": {"r": 0}}, "lora.r", "at least 1"),
        ({"lora": {"alpha": -1}}, "lora.alpha", "more than 0"),
        ({"lora": {"dropout": 1.0}}, "lora.dropout", "[0, 1)"),
        ({"lora": {"target_modules": "everything"}}, "lora.target_modules", "all-linear"),
        ({"learning_rate": 0}, "learning_rate", "between 0 and 1"),
        ({"learning_rate": -1e-4}, "learning_rate", "between 0 and 1"),
        ({"batch_size": 0}, "batch_size", "at least 1"),
        ({"gradient_accumulation": 0}, "gradient_accumulation", "at least 1"),
        ({"max_steps": 0}, "max_steps", "at least 1"),
        ({"epochs": 0, "max_steps": None}, "epochs", "more than 0"),
        ({"max_length": 4}, "max_length", "at least 16"),
        ({"beta": 0}, "beta", "more than 0"),
        ({"desirable_weight": -1}, "desirable_weight", "more than 0"),
        ({"eval_split": 1.0}, "eval_split", "[0, 1)"),
        ({"eval_split": -0.1}, "eval_split", "[0, 1)"),
        ({"device": "tpu"}, "device", "auto, cpu, cuda"),
        ({"save_steps": 0}, "save_steps", "at least 1"),
    ],
)
def test_each_impossible_setting_gets_one_clear_error(make_spec, fields, path, phrase):
    fields = dict(fields)
    errors = errors_of(make_spec(fields.pop("method", "dpo"), **fields), check_model=False)
    assert list(errors) == [path]
    assert phrase in errors[path]


def test_the_message_has_one_sentence_per_field(make_spec):
    with pytest.raises(SpecError) as caught:
        make_spec("dpo", batch_size=0, beta=-1).validate(check_model=False)
    text = str(caught.value)
    assert text.count(".") >= 2
    assert text.startswith("batch_size: must be at least 1") and "beta: must be more than 0" in text


def test_a_dataset_of_the_wrong_kind_for_the_method_is_refused(make_spec, data_files):
    errors = errors_of(make_spec("dpo", dataset={"train": [data_files["sft"]]}))
    assert list(errors) == ["dataset.train"]
    assert "row 1: missing prompt, chosen, rejected" in errors["dataset.train"]
    assert "looks like a sft row" in errors["dataset.train"]
    errors = errors_of(make_spec("sft", dataset={"train": [data_files["kto"]]}))
    assert "missing messages" in errors["dataset.train"] and "kto row" in errors["dataset.train"]
    errors = errors_of(
        make_spec("kto", dataset={"train": [data_files["sft"]], "eval": [data_files["dpo"]]})
    )
    assert "missing prompt, completion, label" in errors["dataset.train"]


def test_bad_rows_are_located_by_file_and_row(make_spec, tmp_path):
    rows = [
        {"prompt": "q", "completion": "a", "label": True},
        {"prompt": "q", "completion": "a", "label": "yes"},
    ]
    path = write_jsonl(tmp_path / "labels.jsonl", rows)
    errors = errors_of(make_spec("kto", dataset={"train": [path]}))
    assert (
        errors["dataset.train"] == "file labels.jsonl row 2: label must be true or false, not 'yes'"
    )
    only_good = write_jsonl(tmp_path / "good.jsonl", [rows[0]] * 5)
    assert (
        "no undesirable (label false) rows"
        in errors_of(make_spec("kto", dataset={"train": [only_good]}))["dataset.train"]
    )
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"messages": []}\nnot json\n')
    assert (
        "line 2 is not JSON"
        in errors_of(make_spec("sft", dataset={"train": [str(broken)]}))["dataset.train"]
    )
    no_assistant = write_jsonl(
        tmp_path / "q.jsonl", [{"messages": [{"role": "user", "content": "hi"}]}]
    )
    assert (
        "no assistant message"
        in errors_of(make_spec("sft", dataset={"train": [no_assistant]}))["dataset.train"]
    )


def test_missing_files_and_no_files_are_refused(make_spec, tmp_path):
    errors = errors_of(make_spec("sft", dataset={"train": [str(tmp_path / "nope.jsonl")]}))
    assert errors == {"dataset.train": f"file {tmp_path / 'nope.jsonl'} does not exist"}
    assert "at least one" in errors_of(make_spec("sft", dataset={"train": []}))["dataset.train"]
    csv = tmp_path / "rows.csv"
    csv.write_text("a,b\n")
    assert (
        "JSONL or Parquet"
        in errors_of(make_spec("sft", dataset={"train": [str(csv)]}))["dataset.train"]
    )


def test_parquet_files_are_read(make_spec, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "pairs.parquet"
    pq.write_table(
        pa.Table.from_pylist([{"prompt": "q", "chosen": "yes", "rejected": "no"}] * 5), path
    )
    make_spec("dpo", dataset={"train": [str(path)]}).validate()


def test_an_eval_split_that_leaves_nothing_to_train_on_is_refused(make_spec, tmp_path):
    one = write_jsonl(tmp_path / "one.jsonl", [{"prompt": "q", "chosen": "yes", "rejected": "no"}])
    errors = errors_of(make_spec("dpo", dataset={"train": [one]}, eval_split=0.5))
    assert errors == {"eval_split": "holds out 1 of 1 rows and leaves none to train on"}
    make_spec("dpo", dataset={"train": [one]}, eval_split=0).validate()


def test_an_unknown_model_is_refused(make_spec, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    errors = errors_of(make_spec("sft", base_model="nobody/no-such-model-xyz"))
    assert list(errors) == ["base_model"]
    assert "not a local model folder" in errors["base_model"]
    assert (
        "does not exist"
        in errors_of(make_spec("sft", base_model=str(tmp_path / "gone")))["base_model"]
    )
    (tmp_path / "empty").mkdir()
    assert (
        "no config.json"
        in errors_of(make_spec("sft", base_model=str(tmp_path / "empty")))["base_model"]
    )
    assert "empty" in errors_of(make_spec("sft", base_model=""))["base_model"]


def test_kto_needs_both_labels_across_the_train_files_but_not_in_the_eval_file(make_spec, tmp_path):
    good = write_jsonl(
        tmp_path / "good.jsonl", [{"prompt": "q", "completion": "yes", "label": True}] * 3
    )
    bad = write_jsonl(
        tmp_path / "bad.jsonl", [{"prompt": "q", "completion": "no", "label": False}] * 3
    )
    make_spec("kto", dataset={"train": [good, bad], "eval": [good]}).validate()
    errors = errors_of(make_spec("kto", dataset={"train": [bad], "eval": [good]}))
    assert errors == {"dataset.train": "has no desirable (label true) rows; KTO needs both kinds"}


def test_a_reward_model_spec_gets_the_measured_defaults_where_it_says_nothing():
    spec = JobSpec.from_dict({"method": "rm", "dataset": {"train": ["a.jsonl"]}})
    assert (spec.learning_rate, spec.max_length, spec.epochs, spec.batch_size) == (3e-4, 96, 3, 8)
    assert (spec.lora.top_layers, spec.lora.dropout, spec.lora.r) == (6, 0.05, 16)
    # What the spec names wins, one field at a time, nested ones included.
    mine = JobSpec.from_dict(
        {"method": "rm", "epochs": 1, "max_length": 256, "lora": {"dropout": 0, "r": 4}}
    )
    assert (mine.epochs, mine.max_length, mine.batch_size) == (1, 256, 8)
    assert (mine.lora.dropout, mine.lora.r, mine.lora.top_layers) == (0, 4, 6)
    # The stored spec names every value, so a rerun of it is the same run.
    assert JobSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def test_other_methods_keep_their_own_defaults_and_every_block_adapted():
    for method in ("sft", "dpo", "kto"):
        spec = JobSpec.from_dict({"method": method})
        assert (spec.epochs, spec.batch_size, spec.lora.top_layers) == (1, 4, None)
        assert spec.lora.dropout == 0


def test_adapting_no_block_is_refused(make_spec):
    spec = make_spec("dpo")
    spec.lora.top_layers = 0
    assert "lora.top_layers" in errors_of(spec, check_model=False, check_files=False)
