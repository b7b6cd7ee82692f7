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
