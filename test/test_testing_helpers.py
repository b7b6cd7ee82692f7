"""The waiting helpers of vita_grasp_ros.testing that the process tests rely on (no ROS needed):
``until_answered`` sends again until any message sent so far is answered, ``wait_for`` names what
it waited for."""
from __future__ import annotations

import itertools

import pytest

from vita_grasp_ros.testing import until_answered, wait_for


def test_until_answered_resends_and_an_early_message_still_counts():
    sent, answers = [], {}
    keys = itertools.count()

    def send():
        k = next(keys)
        sent.append(k)
        if len(sent) == 3:  # the answer to the FIRST message comes after the third was sent
            answers[0] = "late answer to 0"
        return k
    value, key = until_answered(send, answers.get, timeout=30, resend=0.01)
    assert (value, key) == ("late answer to 0", 0) and sent == [0, 1, 2]


def test_until_answered_sends_once_when_the_answer_comes():
    sent = []

    def send():
        sent.append(len(sent))
        return sent[-1]
    assert until_answered(send, lambda k: f"answer {k}", timeout=30, resend=30) == ("answer 0", 0)
    assert sent == [0]


def test_until_answered_times_out_naming_what_and_how_many_were_sent():
    with pytest.raises(AssertionError, match=r"waiting for the node's answer \(\d+ sent\)"):
        until_answered(lambda: 1, lambda k: None, timeout=0.2, resend=0.05,
                       what="the node's answer")


def test_wait_for_returns_the_value_or_names_what_it_waited_for():
    assert wait_for(lambda: [1], 1) == [1]
    with pytest.raises(AssertionError, match="timed out after 0.1 s waiting for the thing"):
        wait_for(lambda: 0, 0.1, what="the thing")
