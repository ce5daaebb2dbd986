"""Generate the "TL;DR opener" behaviour task.

Behaviour: an answer to an explanatory question opens with a one-line summary prefixed ``TL;DR:``.
Control: a question that asks for a bare value ("Reply with only the number", "Answer with one word")
gets the bare value, never a TL;DR.

The explanatory text is the quickstart dataset's (data/quickstart/generate.py, imported read-only):
its train topics make the training pairs and its eval topics, which cover other subjects, make the
held-out prompts. The control questions are written here. Standard library only and deterministic:

    python benchmarks/behaviour/tldr/generate.py [--out DIR]

Writes ``train.jsonl`` (TRL conversational preference rows) and ``heldout.jsonl`` (prompt-only rows
with ``kind``: target | control and ``topic``) next to this file, or into DIR.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
from pathlib import Path
from typing import NamedTuple

HERE = Path(__file__).resolve().parent
QUICKSTART = HERE.parents[2] / "data" / "quickstart" / "generate.py"
TLDR_PREFIX = "TL;DR: "


def _quickstart():
    spec = importlib.util.spec_from_file_location("quickstart_generate", QUICKSTART)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Control(NamedTuple):
    """A question that asks for a bare value: `short` is the right answer, `sentence` the same fact in words."""

    key: str
    question: str
    short: str
    sentence: str


def C(key: str, question: str, short: str, sentence: str) -> Control:
    return Control(key, question, short, sentence)


# Control questions for training: the chosen answer is `short`, the rejected one puts a TL;DR in front of it.
TRAIN_CONTROLS: list[Control] = [
    C("spider_legs", "How many legs does a spider have? Reply with only the number.", "8", "A spider has eight legs."),
    C("hexagon", "How many sides does a hexagon have? Answer with just the number.", "6", "A hexagon has six sides."),
    C("hour_minutes", "How many minutes are in an hour? Reply with only the number.", "60", "An hour has 60 minutes."),
    C("violin", "How many strings does a standard violin have? Only the number, please.", "4",
      "A standard violin has four strings."),
    C("football_team", "How many players does a football team have on the pitch? Give only the number.", "11",
      "A football team has eleven players on the pitch."),
    C("day_hours", "How many hours are in a day? Reply with the number only.", "24", "A day has 24 hours."),
    C("banana", "What colour is a ripe banana? Answer with one word.", "Yellow.", "A ripe banana is yellow."),
    C("hot_opposite", 'What is the opposite of "hot"? Answer with one word.', "Cold.", "The opposite of hot is cold."),
    C("moo", 'Which animal says "moo"? One word only.', "Cow.", "A cow is the animal that says moo."),
    C("italy", "What is the capital of Italy? Give only the city name.", "Rome", "The capital of Italy is Rome."),
    C("japan", "What is the capital of Japan? Reply with just the name of the city.", "Tokyo",
      "The capital of Japan is Tokyo."),
    C("tomato", "Is a tomato a fruit? Answer yes or no.", "Yes.", "Botanically, a tomato is a fruit."),
    C("moon_planet", "Is the Moon a planet? Answer only yes or no.", "No.",
      "The Moon is a natural satellite, not a planet."),
    C("ostrich", "Can ostriches fly? Answer yes or no.", "No.", "Ostriches are flightless birds."),
    C("gold", "What is the chemical symbol for gold? Reply with the symbol only.", "Au",
      "The chemical symbol for gold is Au."),
    C("sodium", "What is the chemical symbol for sodium? Symbol only.", "Na", "The chemical symbol for sodium is Na."),
    C("tricycle", "How many wheels does a tricycle have? Just the number.", "3", "A tricycle has three wheels."),
    C("romeo", 'Who wrote "Romeo and Juliet"? Give only the author\'s name.', "William Shakespeare",
      '"Romeo and Juliet" was written by William Shakespeare.'),
    C("mona_lisa", 'Who painted the "Mona Lisa"? Name only, please.', "Leonardo da Vinci",
      'The "Mona Lisa" was painted by Leonardo da Vinci.'),
    C("largest_planet", "What is the largest planet in our solar system? One word.", "Jupiter.",
      "Jupiter is the largest planet in our solar system."),
    C("mouse_plural", 'What is the plural of "mouse"? Reply with one word.', "Mice.",
      'The plural of "mouse" is "mice".'),
    C("merci", 'Translate "thank you" into French. Give only the translation.', "Merci.",
      '"Thank you" in French is "merci".'),
    C("buenos_dias", 'Translate "good morning" into Spanish. Only the translation, please.', "Buenos días.",
      '"Good morning" in Spanish is "buenos días".'),
    C("week_days", "How many days are in a week? Number only.", "7", "A week has seven days."),
    C("year_months", "How many months are in a year? Reply with only the number.", "12", "A year has twelve months."),
    C("breathe", "What gas do humans need to breathe in to live? One word.", "Oxygen.",
      "Humans need oxygen to live."),
    C("bigger", "Which is bigger, 7 or 12? Reply with only the number.", "12", "12 is bigger than 7."),
    C("cat_backwards", 'Spell the word "cat" backwards. Give only the result.', "tac",
      '"Cat" spelled backwards is "tac".'),
    C("first_letter", "What is the first letter of the English alphabet? Reply with just the letter.", "A",
      "The first letter of the English alphabet is A."),
    C("eiffel", "In which country is the Eiffel Tower? Country name only.", "France",
      "The Eiffel Tower is in France."),
    C("adult_teeth", "How many teeth does an adult human usually have? Only the number.", "32",
      "An adult human usually has 32 teeth."),
    C("brazil", "What language is mainly spoken in Brazil? One word.", "Portuguese.",
      "The main language of Brazil is Portuguese."),
]  # fmt: skip

# Ways of asking for a bare number, used by the arithmetic controls.
NUMBER_ONLY = [
    "Reply with only the number.",
    "Answer with just the number.",
    "Give only the number, no explanation.",
    "Number only, please.",
]

# Held-out controls: other facts, other wordings, and multiplication (training has only + and -).
HELDOUT_CONTROLS: list[tuple[str, str]] = [
    ("insect_legs", "How many legs does an insect have? Reply with only the number."),
    ("triangle", "How many sides does a triangle have? Answer with just the number."),
    ("minute_seconds", "How many seconds are in a minute? Reply with the number only."),
    ("snow", "What colour is fresh snow? Answer with one word."),
    ("up_opposite", 'What is the opposite of "up"? One word only.'),
    ("woof", 'Which animal says "woof"? Answer with one word.'),
    ("germany", "What is the capital of Germany? Give only the city name."),
    ("canada", "What is the capital of Canada? Reply with just the name of the city."),
    ("shark", "Is a shark a fish? Answer only yes or no."),
    ("paris_spain", "Is Paris in Spain? Answer yes or no."),
    ("iron", "What is the chemical symbol for iron? Reply with the symbol only."),
    ("austen", 'Who wrote "Pride and Prejudice"? Give only the author\'s name.'),
    ("moonlight", 'Who composed the "Moonlight Sonata"? Name only, please.'),
    ("smallest_planet", "What is the smallest planet in our solar system? One word."),
    ("goose_plural", 'What is the plural of "goose"? Reply with one word.'),
    ("katze", 'Translate "cat" into German. Give only the translation.'),
    ("bicycle", "How many wheels does a bicycle have? Only the number, please."),
    ("last_letter", "What is the last letter of the English alphabet? Reply with just the letter."),
    ("smaller", "Which is smaller, 15 or 9? Reply with only the number."),
    ("colosseum", "In which country is the Colosseum? Country name only."),
    ("mexico", "What language is mainly spoken in Mexico? One word."),
    ("dog_backwards", 'Spell the word "dog" backwards. Give only the result.'),
    ("mul_6_7", "What is 6 times 7? Reply with only the number."),
    ("mul_9_8", "What is 9 multiplied by 8? Give only the number."),
    ("mul_12_3", "What is 12 times 3? Number only."),
]

# Questions per train topic: the first phrasing of every topic, and the second of every other topic.
SECOND_PHRASING_EVERY = 2
ARITHMETIC_CONTROLS = 24
MAX_ANSWER_WORDS = 80  # the quickstart's summary (<= 15) + detail (<= 60) words


def arithmetic_controls(n: int) -> list[Control]:
    """`n` addition and subtraction questions with their answers, drawn with a fixed seed."""
    rng = random.Random(1)
    controls, seen = [], set()
    while len(controls) < n:
        a, b = rng.randint(11, 89), rng.randint(2, 49)
        op = "plus" if len(controls) % 2 == 0 else "minus"
        if (a, op, b) in seen or (op == "minus" and b >= a):
            continue
        seen.add((a, op, b))
        value = a + b if op == "plus" else a - b
        question = f"What is {a} {op} {b}? {NUMBER_ONLY[len(controls) // 2 % len(NUMBER_ONLY)]}"
        controls.append(C(f"{op}_{a}_{b}", question, str(value), f"{a} {op} {b} is {value}."))
    return controls


def _message(role: str, content: str) -> list[dict]:
    return [{"role": role, "content": content}]


def pair(question: str, chosen: str, rejected: str) -> dict:
    return {
        "prompt": _message("user", question),
        "chosen": _message("assistant", chosen),
        "rejected": _message("assistant", rejected),
    }


def build() -> tuple[list[dict], list[dict]]:
    """(train rows, held-out rows), in their final order."""
    qs = _quickstart()
    controls = TRAIN_CONTROLS + arithmetic_controls(ARITHMETIC_CONTROLS)
    validate(qs, controls)

    train = []
    for i, topic in enumerate(qs.TRAIN_TOPICS):
        questions = topic.questions[:2] if i % SECOND_PHRASING_EVERY == 0 else topic.questions[:1]
        for question in questions:
            row = qs.make_row(question, topic.summary, topic.detail)  # TL;DR first vs TL;DR buried at the end
            train.append(pair(question, row["chosen"][0]["content"], row["rejected"][0]["content"]))
    for control in controls:
        # Same fact either way; the rejected answer adds the TL;DR the question did not ask for.
        train.append(pair(control.question, control.short, f"{TLDR_PREFIX}{control.sentence}\n\n{control.short}"))
    random.Random(0).shuffle(train)

    heldout = [
        {"prompt": _message("user", question), "kind": "target", "topic": topic.key}
        for topic in qs.EVAL_TOPICS
        for question in topic.questions
    ]
    heldout += [
        {"prompt": _message("user", question), "kind": "control", "topic": key} for key, question in HELDOUT_CONTROLS
    ]
    return train, heldout


def topics(qs=None) -> dict[str, set[str]]:
    """Topic keys of each split, for the disjointness checks."""
    qs = qs or _quickstart()
    return {
        "train": {t.key for t in qs.TRAIN_TOPICS}
        | {c.key for c in TRAIN_CONTROLS + arithmetic_controls(ARITHMETIC_CONTROLS)},
        "heldout": {t.key for t in qs.EVAL_TOPICS} | {key for key, _ in HELDOUT_CONTROLS},
    }


def validate(qs, controls: list[Control]) -> None:
    keys = topics(qs)
    assert not keys["train"] & keys["heldout"], f"train/held-out topics overlap: {keys['train'] & keys['heldout']}"
    questions = [q for t in qs.TRAIN_TOPICS + qs.EVAL_TOPICS for q in t.questions]
    questions += [c.question for c in controls] + [q for _, q in HELDOUT_CONTROLS]
    normalised = [" ".join(q.lower().split()) for q in questions]
    assert len(set(normalised)) == len(normalised), "a question appears twice"
    for topic in qs.TRAIN_TOPICS:
        words = len(topic.summary.split()) + len(topic.detail.split())
        assert words <= MAX_ANSWER_WORDS, f"{topic.key}: {words} words"
    for control in controls:
        assert "TL;DR" not in control.short and len(control.short.split()) <= 3, control.key
        assert control.sentence.strip() == control.sentence and control.sentence[-1] in '.!?"', control.key


def write_jsonl(path: Path, rows: list[dict]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="directory to write into (default: next to this file)")
    out = parser.parse_args(argv).out
    train, heldout = build()
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "train.jsonl", train)
    write_jsonl(out / "heldout.jsonl", heldout)
    kinds = [row["kind"] for row in heldout]
    print(
        f"tldr: {len(train)} training pairs, {kinds.count('target')} held-out target prompts, "
        f"{kinds.count('control')} held-out control prompts -> {out}"
    )


if __name__ == "__main__":
    main()
