"""Write general/heldout.jsonl: ordinary chat questions with reference answers, for the retention measure.

    python benchmarks/behaviour/general/generate.py

Retention asks what a run costs the model *outside* its task: the per-token NLL of these reference answers
(given their questions, under the model's chat template) before and after training, and whether greedy
answers to the same questions still answer them (rules.answers_general). The project writes this text
itself, rather than reading the peer data that first showed the cost (../shared/peers), because the
benchmark must run from the package alone, and because every topic here can be checked against both tasks'
training data: `build()` asserts that no question and no topic word occurs in any task's prompts.

Each row: `prompt` (one user message), `answer` (the reference answer, plain prose of the kind an
assistant writes), `topic`, and `expect`: words of which a correct answer names at least one (any case).
Standard library only, deterministic, all of the text in this file.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
TASK_DIRS = [HERE.parent / "tldr", HERE.parent / "decline"]

# (topic, question, expected words, reference answer). Topics are everyday chat: cooking, travel, health,
# money, language, practical how-to and short facts, none of which either task trains on.
# fmt: off
ROWS: list[tuple[str, str, list[str], str]] = [
    ("capital_france", "What is the capital of France?", ["Paris"],
     "The capital of France is Paris. It is also the country's largest city, standing on the Seine in the "
     "north of the country."),
    ("burnt_pan", "How do I clean a burnt pan?", ["soak", "baking soda", "vinegar"],
     "Fill the pan with a little water and a splash of vinegar, bring it to a boil, then take it off the heat "
     "and add two spoonfuls of baking soda. Once the fizzing stops, pour it out and scrub; most of the burnt "
     "layer should come away. For a stubborn mark, make a paste of baking soda and water and let it soak "
     "overnight."),
    ("camping_pack", "What should I pack for a weekend camping trip?", ["tent", "sleeping bag", "water"],
     "Bring a tent, a sleeping bag and mat, warm and waterproof clothes, and sturdy shoes. Pack enough food "
     "and water, a stove or another way to cook, a torch with spare batteries, a small first-aid kit and a "
     "map of the area. Check the weather forecast before you leave."),
    ("start_running", "What is a good way to start running as a beginner?", ["walk", "slow", "minute"],
     "Start slowly by mixing running and walking: for example, run for one minute and walk for two, and repeat "
     "that for twenty minutes, three times a week. Each week, run a little longer and walk a little less. Go at "
     "a pace where you can still talk, and wear comfortable shoes."),
    ("nile", "What is the longest river in Africa?", ["Nile"],
     "The Nile is the longest river in Africa, at about 6,650 kilometres. It flows north through eleven "
     "countries and reaches the Mediterranean Sea in Egypt."),
    ("houseplant_water", "How often should I water a houseplant?", ["soil", "dry"],
     "It depends on the plant, but a good rule is to water when the top few centimetres of soil feel dry to "
     "the touch. Most houseplants suffer more from too much water than from too little."),
    ("jet_lag", "Any tips for dealing with jet lag?", ["sleep", "light", "sun"],
     "Try to shift your sleep toward the new time zone a few days before you travel. After you arrive, get "
     "outside in daylight, stay awake until a normal local bedtime, and drink plenty of water."),
    ("budget_start", "How do I start making a monthly budget?", ["income", "expense", "spend"],
     "Start by writing down your monthly income after tax. Then list your fixed expenses, such as rent and "
     "bills, and track what you spend on everything else for a month. Finally, set a limit for each category "
     "and put some money aside for savings."),
    ("largest_ocean", "Which is the largest ocean on Earth?", ["Pacific"],
     "The Pacific Ocean is the largest ocean on Earth. It covers about a third of the planet's surface, more "
     "than all of the land put together."),
    ("splinter", "How do I get a splinter out of my finger?", ["tweezers", "needle"],
     "Wash your hands and the area with soap and water first. If the end of the splinter sticks out, grip it "
     "with clean tweezers and pull it out at the same angle it went in. If it is under the skin, gently lift "
     "the skin over it with a sterilised needle, then use the tweezers. Clean the spot again afterwards."),
    ("phone_battery", "How can I make my phone battery last longer?", ["brightness", "background", "screen"],
     "Lower the screen brightness or turn on automatic brightness, and shorten the time before the screen "
     "locks. Close apps that run in the background, turn off location, Bluetooth and Wi-Fi when you do not "
     "need them, and use the battery saver mode when the charge gets low."),
    ("tie_shoes", "What is the easiest way to keep my shoelaces from coming undone?", ["knot", "double"],
     "Tie a double knot: after your usual bow, tie the two loops together once more. You can also try a "
     "surgeon's knot, which wraps the laces around each other twice before the bow."),
    ("water_freeze", "At what temperature does water freeze?", ["0", "zero", "32"],
     "Pure water freezes at 0 degrees Celsius, which is 32 degrees Fahrenheit, at normal atmospheric "
     "pressure. Salt water freezes at a lower temperature."),
    ("headache_screen", "I get headaches after working at my computer all day. What might help?",
     ["break", "screen", "water", "light"],
     "Take short breaks every hour to rest your eyes, and look at something far away for a few seconds. Make "
     "sure your screen is not too bright compared with the room, sit at a comfortable distance, and drink "
     "enough water. If the headaches continue, see a doctor or an optician."),
    ("coffee_stain", "How do I get a coffee stain out of a shirt?", ["water", "soap", "detergent"],
     "Rinse the stain from the back with cold water as soon as you can. Then rub in a little liquid laundry "
     "detergent or dish soap, leave it for a few minutes, and wash the shirt as usual. Avoid hot water until "
     "the stain is gone, because heat can set it."),
    ("guitar_strings", "How many strings does a standard guitar have?", ["six", "6"],
     "A standard guitar has six strings. In the usual tuning, from the lowest to the highest, they are tuned "
     "to E, A, D, G, B and E."),
    ("job_interview", "How should I prepare for a job interview?", ["company", "question", "practice"],
     "Read about the company and the role so you can explain why you want it. Practise answers to common "
     "questions, prepare a few examples from your past work, and have one or two questions of your own to ask "
     "at the end. Plan your route so you arrive a little early."),
    ("bicycle_tyre", "How do I fix a flat bicycle tyre?", ["tube", "patch"],
     "Take the wheel off, use tyre levers to remove one side of the tyre, and pull out the inner tube. Find "
     "the hole by pumping some air in and listening, then patch it or fit a new tube. Put the tube back, "
     "refit the tyre, and pump it to the pressure written on its side."),
    ("currency_japan", "What is the currency of Japan?", ["yen"],
     "The currency of Japan is the yen. Its sign is ¥ and its code is JPY."),
    ("remember_names", "How can I get better at remembering people's names?", ["repeat", "say", "name"],
     "When you meet someone, repeat their name out loud straight away, for example \"Nice to meet you, "
     "Sam.\" Use it once more during the conversation, and link it in your head to something about the "
     "person or to someone you already know with the same name. Writing it down afterwards helps too."),
    ("plant_light", "Where should I put a plant that needs bright, indirect light?", ["window"],
     "Put it near a window that gets plenty of light, but out of the direct sun, which can scorch its leaves. "
     "A spot a metre or two from a south- or west-facing window, or behind a thin curtain, usually works well."),
    ("pancakes", "What do I need to make pancakes?", ["flour", "egg", "milk"],
     "For simple pancakes you need flour, eggs, milk, a pinch of salt and a little butter or oil for the pan. "
     "Many recipes also add sugar and baking powder to make them thicker and fluffier."),
    ("currency_uk", "What is the currency of the United Kingdom?", ["pound"],
     "The currency of the United Kingdom is the pound sterling. One pound is divided into 100 pence."),
    ("cat_alone", "Is it safe to leave my cat alone for a weekend?", ["water", "food", "litter"],
     "A healthy adult cat can usually manage for a night or two if it has plenty of fresh water, enough food "
     "and a clean litter box. For a whole weekend, though, it is safer to ask someone to visit once a day to "
     "check on it."),
]
# fmt: on


def build() -> list[dict]:
    rows = [
        {"prompt": [{"role": "user", "content": question}], "answer": answer, "topic": topic, "expect": expect}
        for topic, question, expect, answer in ROWS
    ]
    _check(rows)
    return rows


def _task_prompts() -> list[str]:
    texts = []
    for folder in TASK_DIRS:
        for name in ("train.jsonl", "heldout.jsonl"):
            for line in (folder / name).read_text(encoding="utf-8").splitlines():
                if line:
                    texts += [m["content"].lower() for m in json.loads(line)["prompt"]]
    return texts


def _check(rows: list[dict]) -> None:
    topics = [row["topic"] for row in rows]
    assert len(set(topics)) == len(topics), "a topic appears twice"
    prompts = _task_prompts()
    for row in rows:
        question = row["prompt"][0]["content"].lower()
        assert question not in prompts, f"{row['topic']}: the question occurs in a task's data"
        # The rule that reads greedy answers must pass the reference answer itself.
        assert any(w.lower() in row["answer"].lower() for w in row["expect"]), f"{row['topic']}: answer lacks expect"
    # Distinctive words of the topics (not the short fact questions' common words) never occur in task prompts.
    distinctive = (
        "camping", "jet lag", "budget", "shoelace", "coffee stain", "interview", "tyre", "pancake", "houseplant",
        "burnt", "nile", "splinter", "battery", "guitar", "yen", "currency", "people's names", "beginner",
    )  # fmt: skip
    for word in distinctive:
        assert not any(word in p for p in prompts), f"{word!r} occurs in a task's prompts"


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="directory to write into (default: next to this file)")
    args = parser.parse_args(argv)
    write_jsonl(args.out / "heldout.jsonl", build())


if __name__ == "__main__":
    main()
