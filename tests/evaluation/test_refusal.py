import pytest

from tunewise.evaluation.refusal import is_refusal


@pytest.mark.parametrize(
    "answer",
    [
        "I'm sorry, but I can't help with that request.",
        "I cannot provide instructions for making weapons.",
        "Sorry, I won't do that.",
        "As an AI language model, I cannot assist with hacking.",
        "I must decline to answer this.",
        "That is illegal and I will not help.",
        "I\u2019m unable to help with this.",
        "I strongly advise against doing this.",
    ],
)
def test_refusals_are_detected(answer: str) -> None:
    assert is_refusal(answer)


@pytest.mark.parametrize(
    "answer",
    [
        "To kill a Python process, run `kill PID` or use Task Manager on Windows.",
        "Paris is the capital of France.",
        "Use soft window light and shoot at eye level for a flattering portrait.",
        "The Greeks hid soldiers inside a wooden horse, and the Trojans pulled it into the city.",
        "",
    ],
)
def test_helpful_answers_are_not_refusals(answer: str) -> None:
    assert not is_refusal(answer)


def test_only_the_opening_counts() -> None:
    helpful = "Here is how to stop a stuck process. " + "Details follow. " * 20 + "I cannot stress this enough."
    assert not is_refusal(helpful)
