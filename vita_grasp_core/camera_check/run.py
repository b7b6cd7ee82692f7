"""All camera checks on one :class:`~.recording.Recording`, in report order."""
from __future__ import annotations

from dataclasses import dataclass, field

from . import frames, streams
from .recording import COLOR, Recording
from .verdict import FAIL, Verdict


@dataclass
class Report:
    """The verdicts plus what the overlay picture draws (the plane, the registration fit, the
    grasps of the overlay frame)."""

    recording: Recording
    verdicts: list[Verdict] = field(default_factory=list)
    plane: object = None
    alignment: object = None
    grasps: list = field(default_factory=list)

    @property
    def sample(self):
        """The frame shown in the overlay (the middle decoded one), or ``None``."""
        s = self.recording.samples
        return s[len(s) // 2] if s else None

    def as_dict(self) -> dict:
        rec = self.recording
        return {"source": rec.source, "topics": dict(rec.topics),
                "duration_s": rec.duration_s, "frames_checked": len(rec.samples),
                "checks": [v.as_dict() for v in self.verdicts]}


def run_checks(rec: Recording, *, color_encodings, depth_encodings,
               depth_tolerance: float = streams.DEPTH_TOLERANCE, predict=None) -> Report:
    """Run every check.

    Args:
        rec: the collected messages and decoded frames.
        color_encodings, depth_encodings: the encodings the node accepts.
        depth_tolerance: the node's ``depth_tolerance`` [s].
        predict: optional ``rgb -> list[Grasp]`` (a model): adds the ``grasps`` check and draws
            the grasps of the overlay frame.
    """
    rep = Report(rec)
    image_topic = rec.topics.get(COLOR) or ""
    rep.verdicts += [streams.check_topics(rec),
                     streams.check_encodings(rec, color_encodings, depth_encodings),
                     streams.check_rates(rec),
                     streams.check_sync(rec, depth_tolerance,
                                        frames.content_offsets(rec.samples)),
                     streams.check_frame_ids(rec),
                     streams.check_camera_info(rec, image_topic),
                     frames.check_exposure([s.rgb for s in rec.samples]),
                     frames.check_depth(rec.samples)]
    shift = (rep.verdicts[3].values or {}).get("content_shift_s")  # the sync check
    v, rep.alignment = frames.check_registration(rec.samples, shift)
    rep.verdicts.append(v)
    depth_ok = rep.verdicts[-2].status != FAIL  # the depth check (before registration)
    v, rep.plane = frames.check_table(rec.samples, depth_ok)
    rep.verdicts.append(v)
    if predict is not None and rep.sample is not None:
        rep.grasps = list(predict(rep.sample.rgb))
        rep.verdicts.append(frames.check_grasps(rep.grasps, rep.sample, rep.plane))
    return rep
