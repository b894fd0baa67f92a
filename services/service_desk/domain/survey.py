"""The satisfaction survey: a bank of questions in sets (data: ``config/survey_bank.json``), one
set per survey, rotating so that a customer is never asked the same set twice in a row, and the
rules an answer must follow (every question of the set answered: a score from 1 to 5, or text)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crm_shared.errors import FieldError, ValidationFailed
from services.service_desk.domain.rules import CONFIG_DIR, DeskConfigError

SCORE = "score"
TEXT = "text"


@dataclass(frozen=True)
class Question:
    question_id: str
    text: str
    answer: str  # SCORE or TEXT


@dataclass(frozen=True)
class SurveySet:
    set_id: str
    name: str
    questions: tuple[Question, ...]


@dataclass(frozen=True)
class SurveyBank:
    version: str
    sets: tuple[SurveySet, ...]

    @classmethod
    def load(cls, path: Path | None = None) -> SurveyBank:
        path = path or CONFIG_DIR / "survey_bank.json"
        try:
            return cls.from_data(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise DeskConfigError(f"the survey bank {path} is not usable: {e}") from e

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> SurveyBank:
        items = {i["id"]: Question(i["id"], i["text"], i["answer"]) for i in data["items"]}
        sets = []
        for s in data["sets"]:
            questions = tuple(items[q] for q in s["items"])
            if not 4 <= len(questions) <= 5:
                raise DeskConfigError(
                    f"survey set {s['id']} has {len(questions)} questions: a set asks 4 or 5"
                )
            if any(q.answer not in (SCORE, TEXT) for q in questions):
                raise DeskConfigError(f"survey set {s['id']}: an answer is '{SCORE}' or '{TEXT}'")
            sets.append(SurveySet(s["id"], s["name"], questions))
        if len(sets) < 2:
            raise DeskConfigError("a survey bank needs at least two sets to rotate")
        return cls(str(data["version"]), tuple(sets))

    def set(self, set_id: str) -> SurveySet:
        for survey_set in self.sets:
            if survey_set.set_id == set_id:
                return survey_set
        raise KeyError(set_id)

    def next_set(self, customer_id: str, last_set_id: str | None) -> SurveySet:
        """The set after the one this customer was asked last; a customer's first set is chosen by
        their id, so that first surveys spread over every set."""
        ids = [s.set_id for s in self.sets]
        if last_set_id in ids:
            return self.sets[(ids.index(last_set_id) + 1) % len(ids)]
        digest = hashlib.sha256(customer_id.encode()).digest()
        return self.sets[int.from_bytes(digest[:8], "big") % len(ids)]


def checked_answers(survey_set: SurveySet, answers: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The answers in the set's order, each with ``question_id``, ``score`` and ``text``; refused,
    naming each wrong answer, unless every question of the set is answered once and as it asks."""
    errors: list[FieldError] = []
    given: dict[str, Mapping[str, Any]] = {}
    by_id = {q.question_id: q for q in survey_set.questions}
    for i, answer in enumerate(answers):
        question = by_id.get(answer["question_id"])
        if question is None:
            errors.append(
                FieldError(
                    f"answers.{i}.question_id",
                    "not_in_set",
                    f"set {survey_set.set_id} asks {', '.join(by_id)}",
                )
            )
        elif answer["question_id"] in given:
            errors.append(
                FieldError(f"answers.{i}.question_id", "repeated", "each question is answered once")
            )
        elif question.answer == SCORE and answer.get("score") is None:
            errors.append(
                FieldError(f"answers.{i}.score", "required", "this question takes a score from 1 to 5")
            )
        elif question.answer == TEXT and answer.get("score") is not None:
            errors.append(
                FieldError(f"answers.{i}.score", "not_allowed", "this question takes text, not a score")
            )
        else:
            given[answer["question_id"]] = answer
    missing = [q for q in by_id if q not in given]
    if missing and not errors:
        errors.append(
            FieldError(
                "answers", "incomplete", f"answer every question of the set: missing {', '.join(missing)}"
            )
        )
    if errors:
        raise ValidationFailed("the survey answers do not fit the set asked", fields=errors)
    return [
        {
            "question_id": q.question_id,
            "score": given[q.question_id].get("score"),
            "text": given[q.question_id].get("text"),
        }
        for q in survey_set.questions
    ]


def average_score(answers: Sequence[Mapping[str, Any]]) -> float | None:
    scores = [a["score"] for a in answers if a.get("score") is not None]
    return round(sum(scores) / len(scores), 2) if scores else None
