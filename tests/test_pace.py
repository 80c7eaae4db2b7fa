"""How often a streaming reply is redrawn (reply.Pace), on made-up clocks: no test waits on time."""

from __future__ import annotations

from itertools import pairwise

from kimichat.reply import Pace


def redraws(pace: Pace, times: list[float]) -> list[float]:
    return [t for t in times if pace.due(t)]


def test_the_first_piece_shows_at_once():
    assert redraws(Pace(1 / 11), [5.0]) == [5.0]


def test_tokens_off_the_beat_still_get_the_set_rate():
    # 50 tokens a second for 6 s: each 1/11 s beat falls between two tokens (waiting a whole
    # interval after each redraw would give 10 a second)
    tokens = [i * 0.02 for i in range(301)]
    shown = redraws(Pace(1 / 11), tokens)
    assert (len(shown) - 1) / (shown[-1] - shown[0]) >= 10.8
    gaps = [b - a for a, b in pairwise(shown)]
    assert min(gaps) >= 0.06  # never two redraws in a row to catch up


def test_no_burst_after_a_silence():
    pace = Pace(0.1)
    before = redraws(pace, [0.0, 0.1, 0.2])
    after = redraws(pace, [2.0, 2.02, 2.04, 2.06, 2.08, 2.10])
    assert before == [0.0, 0.1, 0.2] and after == [2.0, 2.10]


def test_no_more_than_the_set_rate_when_tokens_pour_in():
    tokens = [i * 0.001 for i in range(1001)]  # 1000 tokens a second for 1 s
    assert len(redraws(Pace(1 / 11), tokens)) <= 12
