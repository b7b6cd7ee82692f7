"""Package a trained checkpoint as a shipped model (``vita-grasp weights ship``).

The shipped file keeps what prediction needs and nothing else: the weights a predictor loads (the
decoder, plus the encoder only where the checkpoint holds it, i.e. a random-init or fine-tuned
one), the model config and the metadata that sets the predictor's defaults (``decode``:
threshold and quality calibration chosen on validation data) with a short training summary. The
optimizer and resume state of a ``last.pt`` are dropped. Written as safetensors (nothing in it can
execute code when loaded), optionally in half precision, checked by loading it back.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from .zoo import MAX_SHIPPED_BYTES, NAME_PATTERN, ZooEntry, ZooError, file_sha256, zoo_dir

#: Metadata keys kept in a shipped file (others, e.g. per-epoch logs, are dropped).
KEPT_META = ("decode", "epoch", "metrics", "val", "recipe", "data", "trained_on", "summary")


def ship_checkpoint(src, name: str, *, card=None, description: str = "",
                    half: bool = False, folder: Path | None = None,
                    max_bytes: int = MAX_SHIPPED_BYTES) -> ZooEntry:
    """Write ``<folder>/<name>.safetensors`` from the checkpoint ``src``, copy the model card
    ``card`` to ``<name>.md`` and record both in the manifest. Returns the new entry.

    Raises :class:`ZooError` for a bad name, a missing card, a file over ``max_bytes`` (a copied
    encoder: ship a frozen-encoder checkpoint), or a result that does not load back.
    """
    from .checkpoint import load_model, read_checkpoint, write_checkpoint
    from .zoo import write_manifest_entry

    if not NAME_PATTERN.match(name):
        raise ZooError(f"model name {name!r}: use lower-case letters, digits, '-' or '_' "
                       "(starting with a letter, at most 40)")
    folder = Path(folder) if folder is not None else zoo_dir()
    card = Path(card) if card is not None else None
    if card is not None and not card.is_file():
        raise ZooError(f"model card {card} not found")
    blob = read_checkpoint(src)
    state = blob["state_dict"]
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    meta = {k: v for k, v in blob["meta"].items() if k in KEPT_META}
    out = folder / f"{name}.safetensors"
    write_checkpoint(out, state, blob["model_config"], meta)
    size = out.stat().st_size
    if size > max_bytes:
        out.unlink()
        raise ZooError(f"{src} packs into {size / 2**20:.1f} MB, over the {max_bytes / 2**20:.0f}"
                       " MB limit for weights kept in git (does it copy the encoder? ship a "
                       "checkpoint whose encoder is frozen and referenced)")
    load_model(out)  # the result must rebuild (strict keys) before it is recorded
    card_name = ""
    if card is not None:
        card_name = f"{name}.md"
        if card.resolve() != (folder / card_name).resolve():
            shutil.copyfile(card, folder / card_name)
    entry = ZooEntry(name=name, file=out.name, sha256=file_sha256(out), bytes=size,
                     description=description, card=card_name)
    write_manifest_entry(entry, folder)
    return entry
