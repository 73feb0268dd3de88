"""Shared wording helpers of the question families: phrasing choice, turns, places, plurals."""
import numpy as np

from drivepi.datasets.qa_schema import QATurn


def pick(rng: np.random.Generator, phrasings: tuple, **fields) -> str:
    """One of several phrasings of a question, filled with ``fields``."""
    return phrasings[int(rng.integers(len(phrasings)))].format(**fields)


def make_turn(question: str, answer: str, qa_type: str, check: str, **params) -> QATurn:
    """A turn whose ``meta`` names the verifier rule (``check``) and its parameters."""
    return QATurn(question=question, answer=answer, type=qa_type, meta=dict(check=check, **params))


def plural(name: str) -> str:
    """English plural of a display class name (``bus`` -> ``buses``, ``car`` -> ``cars``)."""
    return name + ('es' if name.endswith('s') else 's')


def yes_no(value: bool) -> str:
    return 'yes' if value else 'no'
