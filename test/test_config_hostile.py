"""Config files as an attacker or a clumsy user writes them (issue 21 item 9): a YAML "billion
laughs" alias bomb, a file that is not text, a huge file - each one clear ConfigError, quickly."""
from __future__ import annotations

import time

import pytest

from vita_grasp_core.training.config_files import ConfigError, load_raw

BOMB = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{n}: &{n} [{', '.join(['*' + p] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi"))


def test_alias_bomb_is_refused_at_once(tmp_path):
    """526 bytes took 21.7 s and 563 MB (and more levels take any amount)."""
    f = tmp_path / "bomb.yaml"
    f.write_text(BOMB)
    assert len(BOMB) < 600
    t = time.perf_counter()
    with pytest.raises(ConfigError, match="aliases"):
        load_raw(f)
    assert time.perf_counter() - t < 1.0


@pytest.mark.parametrize("content,match", [(b"\xff\xfe\x00binary\x00", "not a text file"),
                                           (b"model:\n  x: " + b"1" * (2 << 20), "bytes")])
def test_files_that_are_no_config(tmp_path, content, match):
    f = tmp_path / "c.yaml"
    f.write_bytes(content)
    with pytest.raises(ConfigError, match=match):
        load_raw(f)


#: Values no number of a config may take (x > 0 is true for inf; int(1e308) is huge).
BAD_NUMBERS = [".nan", ".inf", "-.inf", "1.0e308", "100000000000000000000000000000", "true",
               "'7'", "[]"]


def _numeric_fields():
    """``(override key, Range)`` of every number a training config holds."""
    from vita_grasp_core.bounds import count
    from vita_grasp_core.data.augment import AUGMENT_BOUNDS
    from vita_grasp_core.model_config import MODEL_BOUNDS
    from vita_grasp_core.training.losses import LOSS_BOUNDS
    from vita_grasp_core.training.train_config import DATA_BOUNDS, TRAIN_BOUNDS

    tables = [("model", MODEL_BOUNDS), ("data", DATA_BOUNDS), ("train", TRAIN_BOUNDS),
              ("train.loss", LOSS_BOUNDS), ("data.augment", AUGMENT_BOUNDS),
              ("train.eval", {"batch_size": count(), "smooth_sigma": count(),
                              "max_grasps": count()})]
    return [(f"{where}.{k}", r) for where, table in tables for k, r in table.items()]


def _override(key: str, value: str) -> str:
    where, name = key.rsplit(".", 1)
    return f"data.augment={{{name}: {value}}}" if where == "data.augment" else f"{key}={value}"


@pytest.mark.parametrize("key,rng", _numeric_fields(), ids=lambda v: v if isinstance(v, str)
                         else "")
def test_every_number_is_finite_and_bounded(key, rng):
    """Issue 21 item 9: non-finite data.sigma, train.warmup_epochs, data.min_score and a 186 GiB
    model.output_size passed validation and crashed later; a list where one number belongs (or
    one number where a list belongs) is refused too."""
    from vita_grasp_core.training.config_files import load_raw
    from vita_grasp_core.training.train_config import build_config

    raw = load_raw("tiny.yaml")
    build_config(raw)  # the base config is valid
    values = ([f"[{bad}, {bad}]" for bad in BAD_NUMBERS] + ["3"] if rng.many
              else BAD_NUMBERS + ["[1]", "[0.5, 0.5]"])
    for value in values:
        with pytest.raises(ConfigError) as e:
            build_config(raw, [_override(key, value)])
        msg = str(e.value)
        assert key.rsplit(".", 1)[1] in msg and "\n" not in msg, (key, value, msg)


def test_unknown_backbone_config_keys_are_refused():
    from vita_grasp_core import ModelConfig, build_model
    from vita_grasp_core.backbones import get_spec

    spec = get_spec("internvit")
    cfg = ModelConfig(backbone="internvit", input_size=spec.tiny_input_size, decoder_channels=16,
                      backbone_config={**spec.tiny_config, "num_hiden_layers": 3})
    with pytest.raises(ValueError, match="num_hiden_layers.*did you mean num_hidden_layers"):
        build_model(cfg)


def test_an_empty_config_does_not_train_a_random_frozen_encoder(tmp_path):
    """An empty config file silently trained a random-init frozen InternViT-300M; random
    weights stay possible when asked for (``pretrained_model: null``, as the tiny config and the
    seed README's config say)."""
    from vita_grasp_core.training.config_files import load_raw
    from vita_grasp_core.training.train_config import build_config

    (tmp_path / "empty.yaml").write_text("")
    with pytest.raises(ConfigError, match="frozen encoder with random weights"):
        build_config(load_raw(tmp_path / "empty.yaml"))
    with pytest.raises(ConfigError, match="frozen encoder with random weights"):
        build_config({"model": {"backbone": "dinov2"}})
    cfg = build_config(load_raw(tmp_path / "empty.yaml"), ["model.pretrained_model=null"])
    assert cfg.model.freeze_vit and cfg.model.pretrained_model is None
    assert not build_config({}, ["model.freeze_vit=false"]).model.freeze_vit
