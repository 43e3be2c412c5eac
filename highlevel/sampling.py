"""The high level's sampling settings and their defaults, in one place.

A module of its own, without torch, so the command line reads its defaults without loading the
models' libraries.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sampling:
    """How the high level draws each segment's codes; the one source of the defaults of
    `daps command`, `daps highlevel control` and the library functions they call
    (`highlevel.command.run_command`, `generate_batch`, `highlevel.control.run_control`).

    temperature: of the code distributions (0 = greedy). top_k: sample among the k most likely
    codes (0 = all). guidance: classifier-free guidance weight on text and COM
    (`HighLevelPrior.sample`; 1 = none; 4 measured best, docs/highlevel.md). candidates: with a
    COM goal (--speed/--turn), code sequences drawn per segment, the one whose decoded speed and
    turn rate come closest to the goal kept (`pick_candidate`; 1 = plain sampling; 8 follow text
    as well as 16 did, at half the sampling time: docs/highlevel.md).
    """

    temperature: float = 1.0
    top_k: int = 0
    guidance: float = 4.0
    candidates: int = 8
