"""Progress bars of long CLI work: a bar per phase, each finished when the next begins."""

from __future__ import annotations

import io

from crm_cli.progress import PhasedProgress, ProgressBar


def test_a_bar_shows_done_of_total_and_the_rate() -> None:
    out = io.StringIO()
    bar = ProgressBar(200, "rebuilding", "events", stream=out)
    bar.advance(50)
    bar.finish()
    assert "rebuilding [#######" in out.getvalue() and "50/200 events" in out.getvalue()


def test_each_phase_gets_its_own_bar_and_the_last_one_is_finished_first() -> None:
    phases = PhasedProgress()
    facts = phases.at("facts", 10, "recompute: facts", "customers")
    assert phases.at("facts", 10, "recompute: facts", "customers") is facts
    facts.advance(10)
    segments = phases.at("segments", 10, "recompute: segments", "customers")
    assert segments is not facts and segments.done == 0
    phases.finish()
    assert phases.bar is None
