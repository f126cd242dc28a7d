"""Checks examples/demo-train/copy_sources.py, the targets of the demo model's attention supervision.

  python3 tests/e2e/test_copy_sources.py
"""
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples", "demo-train"))
from copy_sources import copy_sources  # noqa: E402

Q, E, A, X = 100, 101, 102, 103  # question mark, end, answer mark, a filler


class CopySources(unittest.TestCase):
    def test_answer_points_back_to_the_question(self):
        #       0  1   2   3   4  5  6  7   8   9
        ids = [Q, 10, 11, 12, E, X, A, 10, 11, 12]
        mask = [False] * 7 + [True] * 3
        src = copy_sources(ids, mask)
        # position 6 predicts 10 (first copied token: matched forwards), 7 predicts 11, 8 predicts 12
        self.assertEqual(src[6:9], [1, 2, 3])
        self.assertEqual(src[:6], [-1] * 6)  # nothing trained there
        self.assertEqual(src[9], -1)  # the last position predicts nothing

    def test_untrained_targets_have_no_source(self):
        ids = [Q, 10, 11, 12, E, A, 10, 11, 12]
        src = copy_sources(ids, [False] * len(ids))
        self.assertEqual(src, [-1] * len(ids))

    def test_short_matches_are_ignored(self):
        # 10 occurs before, but with different neighbours: a one-token match is below min_score
        ids = [Q, 10, 20, E, A, 30, 10, 40]
        mask = [False] * 6 + [True] * 2
        self.assertEqual(copy_sources(ids, mask)[5], -1)
        self.assertEqual(copy_sources(ids, mask, min_score=1)[5], 1)

    def test_longest_match_wins_then_latest(self):
        # two earlier occurrences of 11: only the second is preceded by 10 as at the copy
        ids = [Q, 11, 12, E, 10, 11, 12, E, A, 10, 11, 12]
        mask = [False] * 9 + [True] * 3
        src = copy_sources(ids, mask)
        self.assertEqual(src[9], 5)
        # identical earlier spans: the latest
        ids = [Q, 10, 11, 12, E, Q, 10, 11, 12, E, A, 10, 11, 12]
        mask = [False] * 11 + [True] * 3
        self.assertEqual(copy_sources(ids, mask)[10:13], [6, 7, 8])

    def test_match_length_is_capped(self):
        span = list(range(10, 30))
        ids = [Q] + span + [E, A] + span
        mask = [False] * (len(span) + 3) + [True] * len(span)
        src = copy_sources(ids, mask, cap=4)
        start = len(span) + 2
        self.assertEqual(src[start:start + len(span) - 1], list(range(1, len(span))))


if __name__ == "__main__":
    unittest.main()
