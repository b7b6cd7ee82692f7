"""The seed README's own config and commands keep working (issue #11 item 7)."""
from __future__ import annotations

import pytest

from vita_grasp_core.training.config_files import yaml_load
from vita_grasp_core.training.train_config import ConfigError, build_config, load_config

#: The configuration as the seed README documents it.
SEED_YAML = """\
model:
  type: "internvit"
  pretrained_model: null
  backbone_config: {hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 2,
                    intermediate_size: 128}
training:
  batch_size: 8
  epochs: 100
  learning_rate: 1e-4
"""


def test_seed_yaml_is_accepted(tmp_path):
    p = tmp_path / "seed.yaml"
    p.write_text(SEED_YAML)
    cfg = load_config(p, ["training.epochs=3"])
    assert cfg.model.backbone == "internvit"
    assert cfg.train.batch_size == 8 and cfg.train.epochs == 3
    assert cfg.train.learning_rate == pytest.approx(1e-4)


def test_aliases_do_not_hide_contradictions():
    raw = yaml_load(SEED_YAML)
    with pytest.raises(ConfigError, match="both 'train' and its alias 'training'"):
        build_config({**raw, "train": {"epochs": 1}})
    with pytest.raises(ConfigError, match="contradicts"):
        build_config({"model": {"type": "internvit", "backbone": "qwen2vl"}})
    with pytest.raises(ConfigError, match="unknown config section"):
        build_config({"trainning": {}})


def test_seed_train_command_line(tmp_path):
    """``scripts/train.py --model_type internvit --dataset_root <...>/scenes --output_dir ...``
    with the seed's YAML: the data root may be the scenes folder itself."""
    from vita_grasp_core.cli.train import main
    from vita_grasp_core.data.synth import synthesize

    synthesize(tmp_path / "data", scenes=2, frames=1, seed=0)
    p = tmp_path / "seed.yaml"
    p.write_text(SEED_YAML)
    rc = main(["--model_type", "internvit", "--config", str(p), "--dataset_root",
               str(tmp_path / "data" / "scenes"), "--output_dir", str(tmp_path / "run"),
               "--no_progress", "--set", "training.epochs=1", "--set", "train.batch_size=1",
               "--set", "data.train_split=null", "--set", "data.train_scenes=[0]",
               "--set", "data.val_split=null", "--set", "data.val_scenes=[1]",
               "--set", "model.input_size=[56,70]", "--set", "model.output_size=[48,64]",
               "--set", "model.decoder_channels=16", "--set", "data.augment=false",
               "--set", "train.num_workers=0"])
    assert rc == 0
    assert (tmp_path / "run" / "best_model.pt").is_file()
