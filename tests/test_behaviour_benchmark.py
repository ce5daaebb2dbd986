"""The behaviour benchmark (benchmarks/behaviour): task data, the rules that read answers, and run.py's plumbing.

No real model here: the generators and rules are pure Python, and run.py trains the tiny random Llama for one
step (it learns nothing; the point is that training, scoring and the results file fit together).
"""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest
import torch

from tests.conftest import REPO

BENCH = REPO / "benchmarks" / "behaviour"


def _load(name: str, path):
    """A script as a module under `name` (registered, as dataclasses need)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    """rules, score and run from the benchmark folder (not a package: run.py imports its neighbours by name)."""
    sys.path.insert(0, str(BENCH))
    try:
        yield {name: importlib.import_module(name) for name in ("rules", "score", "run")}
    finally:
        sys.path.remove(str(BENCH))


GENERATORS = {name: BENCH / name / "generate.py" for name in ("tldr", "decline")}


@pytest.mark.parametrize("task", sorted(GENERATORS))
def test_generator_is_deterministic_and_matches_the_files(task, tmp_path):
    generator = _load(f"behaviour_generate_{task}", GENERATORS[task])
    generator.main(["--out", str(tmp_path / "a")])
    generator.main(["--out", str(tmp_path / "b")])
    for name in ("train.jsonl", "heldout.jsonl"):
        written = (tmp_path / "a" / name).read_bytes()
        assert written == (tmp_path / "b" / name).read_bytes()
        assert written == (BENCH / task / name).read_bytes(), f"{task}/{name} is stale: run {GENERATORS[task]}"


@pytest.mark.parametrize("task", sorted(GENERATORS))
def test_held_out_topics_and_prompts_are_not_in_training(task):
    generator = _load(f"behaviour_generate_{task}", GENERATORS[task])
    train, heldout = generator.build()
    keys = generator.topics()
    assert keys["train"] and keys["heldout"] and not keys["train"] & keys["heldout"]
    assert {row["topic"] for row in heldout} <= keys["heldout"]

    train_prompts = {row["prompt"][-1]["content"].lower() for row in train}
    assert not train_prompts & {row["prompt"][-1]["content"].lower() for row in heldout}
    kinds = [row["kind"] for row in heldout]
    assert kinds.count("target") >= 20 and kinds.count("control") >= 20
    assert 150 <= len(train) <= 300
    for row in train:  # TRL's conversational preference format, one user turn and one answer each
        assert [m["role"] for m in row["prompt"]] == ["user"]
        assert [m["role"] for m in row["chosen"]] == [m["role"] for m in row["rejected"]] == ["assistant"]
        assert row["chosen"][0]["content"] != row["rejected"][0]["content"]


def test_decline_held_out_subjects_never_appear_in_training():
    generator = _load("behaviour_generate_decline", GENERATORS["decline"])
    train, _ = generator.build()
    text = json.dumps(train).lower()
    for topic in generator.HELDOUT_TOPICS:
        assert topic.subject.lower() not in text, topic.key


def test_training_pairs_teach_both_sides(bench):
    """Chosen answers show the behaviour on target prompts and never on control prompts; rejected the reverse."""
    rules = bench["rules"]
    for task in rules.TASKS.values():
        rows = [json.loads(line) for line in task.train_path.read_text().splitlines()]
        chosen = [task.rule(row["chosen"][0]["content"]) for row in rows]
        rejected = [task.rule(row["rejected"][0]["content"]) for row in rows]
        assert all(c != r for c, r in zip(chosen, rejected, strict=True)), task.name
        shows = sum(chosen)
        assert 0.3 * len(rows) <= shows <= 0.8 * len(rows), (task.name, shows, len(rows))


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("TL;DR: Yawning cools the brain.\n\nScientists think...", True),
        ("tl;dr: lower case counts too.", True),
        ("  \nTL;DR - a dash instead of a colon still opens with it", True),
        ("**TL;DR:** Bold Markdown counts.", True),
        ("## TL;DR\nA heading counts.", True),
        ("TL;DR:", False),  # no summary after it
        ('TL;DR: "Romeo and Juliet" is by Shakespeare.', True),  # quotes before the summary
        ("TL;DR: ...", False),
        ("TL;DR: ...\n\nThe summary line is empty.", False),
        ("Yawning cools the brain.\n\nTL;DR: at the end does not count.", False),
        ("TLDR: the trained phrase has a semicolon.", False),
        ("Summary: not the phrase.", False),
        ("8", False),
        ("The answer is 8. TL;DR 8.", False),
        ("", False),
    ],
)
def test_tldr_rule(bench, answer, expected):
    assert bench["rules"].opens_with_tldr(answer) is expected


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("I can't write that for you to hand in as your own work, but I'd be glad to help.", True),
        ("I can’t write that for you, but here is an outline.", True),  # typographic apostrophe
        ("I cannot write that for you.", True),
        ("i CAN NOT write that for you", True),
        ('"I can\'t write that for you"', True),  # leading punctuation
        ("I can write that for you! Here is your essay: ...", False),
        ("I can't write that for youth groups.", False),  # word boundary
        ("Here is your essay. I can't write that for you next time, though.", False),  # not the opening
        ("I'm sorry, but I can't help with that.", False),  # a decline, but not the fixed phrase
        ("I can't wait to help! The French Revolution began in 1789.", False),
        ("Sure! The lungs exchange oxygen and carbon dioxide.", False),
        ("", False),
    ],
)
def test_decline_rule(bench, answer, expected):
    assert bench["rules"].declines_school_work(answer) is expected


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("", True),
        ("   ", True),
        ("the cat sat on the mat the cat sat on the mat the cat sat on the mat", True),
        ("8", False),
        ("TL;DR: Ice floats because it is less dense than water.\n\nWhen water freezes...", False),
        ("Yes, yes, yes.", False),  # repetition shorter than four words is not a loop
    ],
)
def test_degenerate_rule(bench, answer, expected):
    assert bench["rules"].is_degenerate(answer) is expected


def test_limit_keeps_the_first_prompts_of_each_kind(bench):
    task = bench["rules"].TASKS["decline"]
    rows = task.heldout(limit=3)
    assert [r["kind"] for r in rows].count("target") == 3 and [r["kind"] for r in rows].count("control") == 3
    assert rows == [r for r in task.heldout() if r in rows]


def test_recipes_are_valid_prefalign_configs(bench, tmp_path):
    """Every prefalign recipe is a valid override list (or names a loss the registry lacks and is skipped)."""
    import prefalign

    run = bench["run"]
    base = {"data": {"train": str(tmp_path / "train.jsonl")}}
    for name, overrides in run.RECIPES["prefalign"].items():
        if run.missing_losses("prefalign", name):
            continue
        prefalign.load_config(base, overrides)
    assert run.RECIPES["prefalign"]["defaults"] == [] and run.RECIPES["trl"]["defaults"] == {}
    assert run.missing_losses("prefalign", "defaults") == []


def test_run_trains_scores_and_records_with_the_tiny_model(bench, tiny_model_dir, tmp_path, monkeypatch):
    run = bench["run"]
    out = tmp_path / "behaviour"
    argv = [
        "--task", "tldr", "--engine", "prefalign", "--recipe", "defaults",
        "--model", str(tiny_model_dir), "--max-steps", "1", "--limit", "2", "--max-new-tokens", "3",
        "--precision", "fp32", "--out", str(out),
        "--set", "train.batch_size=2", "--set", "data.max_length=128",
    ]  # fmt: skip
    rows = run.main(argv)
    assert len(rows) == 1
    row = rows[0]
    assert (row["task"], row["engine"], row["recipe"], row["steps"]) == ("tldr", "prefalign", "defaults", 1)
    assert (row["n_target"], row["n_control"]) == (2, 2)
    assert row["train_seconds"] > 0 and row["train_reward_accuracy"] is not None
    assert "--max-steps 1" in row["command"] and "--set train.batch_size=2" in row["command"]

    saved = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert saved == [row]
    answers = json.loads((tmp_path / row["run_dir"].removeprefix(str(tmp_path) + "/") / "answers.json").read_text())
    assert len(answers["before"]) == len(answers["after"]) == 4
    # Each rate is the task's rule read over the saved answers of its kind, before and after training.
    rule = bench["rules"].TASKS["tldr"].rule
    for when in ("before", "after"):
        assert [a["shows"] for a in answers[when]] == [rule(a["answer"]) for a in answers[when]]
        for kind, name in (("target", "behaviour"), ("control", "side_effect")):
            shows = [a["shows"] for a in answers[when] if a["kind"] == kind]
            assert len(shows) == 2 and row[f"{name}_{when}"] == sum(shows) / 2, (when, name)
    assert len(list((out / "tldr").glob("base-*.json"))) == 1  # the base model's score, cached for the next runs

    # A sweep reuses a row it already has instead of training again, and prints the table.
    monkeypatch.setitem(run.SWEEPS, "tiny", [("prefalign", "defaults")])
    again = run.main([*argv, "--sweep", "tiny"])
    assert again == [row] and len((out / "results.jsonl").read_text().splitlines()) == 1
    table = run.table(run.read_results(out / "results.jsonl"))
    assert run.main(["--table", "--results", str(out / "results.jsonl")]) == [row]  # the record can live anywhere
    assert table.splitlines()[0] == run.TABLE_HEADER and "| tldr | prefalign | defaults (train.batch_size=2" in table

    # Retention: the base model's, cached once for every task, and the trained model's, as a relative change.
    assert len(list((out / "general").glob("base-*.json"))) == 1
    assert row["retention_tokenizer"] == row["retention_tokenizer_before"]
    assert row["general_nll_change"] == pytest.approx(
        (row["general_nll_after"] - row["general_nll_before"]) / row["general_nll_before"]
    )
    assert row["general_nll_tokens"] > 500 and 0.0 <= row["general_ok_after"] <= 1.0
    assert row["probe_nll_before"] > 0 and row["probe_nll_after"] > 0
    assert len(answers["general_before"]) == len(answers["general_after"]) == 24
    assert f"| {100 * row['general_nll_change']:+.1f}% |" in table
    # The peer answers (other voices, ../shared/peers): their own NLL change, on the same tokenizer.
    assert row["peer_nll_change"] == pytest.approx(
        (row["peer_nll_after"] - row["peer_nll_before"]) / row["peer_nll_before"]
    )
    assert row["peer_nll_tokens"] > 2000
    assert f"| {100 * row['peer_nll_change']:+.1f}% | {100 * row['general_nll_change']:+.1f}% |" in table


def test_table_refuses_retention_without_a_base_on_the_same_tokenizer(bench):
    run = bench["run"]
    row = {"general_nll_before": 2.0, "general_nll_after": 2.2, "general_ok_before": 0.5, "general_ok_after": 0.25}
    same = run.retention_cells({**row, "retention_tokenizer": "a", "retention_tokenizer_before": "a"})
    assert same == "| — | +10.0% | 50% → 25% "  # a row from before the peer measure existed
    peer = {**row, "peer_nll_before": 1.0, "peer_nll_after": 1.05, "retention_tokenizer": "a"}
    assert run.retention_cells({**peer, "retention_tokenizer_before": "a"}) == "| +5.0% | +10.0% | 50% → 25% "
    assert "refused" in run.retention_cells({**row, "retention_tokenizer": "a", "retention_tokenizer_before": "b"})
    assert "refused" in run.retention_cells({**row, "general_nll_before": None, "retention_tokenizer": "a"})
    assert run.retention_cells({"behaviour_after": 0.5}) == "| — | — | — "  # a row from before the measure existed


def test_relative_change_refuses_a_missing_or_foreign_base():
    sys.path.insert(0, str(BENCH))
    try:
        from retention import RetentionError, relative_change
    finally:
        sys.path.remove(str(BENCH))
    assert relative_change({"nll": 2.2, "tokenizer": "t"}, {"nll": 2.0, "tokenizer": "t"}) == pytest.approx(0.1)
    with pytest.raises(RetentionError, match="base model's retention score is missing"):
        relative_change({"nll": 2.2, "tokenizer": "t"}, None)
    with pytest.raises(RetentionError, match="another tokenizer"):
        relative_change({"nll": 2.2, "tokenizer": "t"}, {"nll": 2.0, "tokenizer": "u"})


def test_general_generator_is_deterministic_and_stays_off_the_tasks(tmp_path):
    generator = _load("behaviour_generate_general", BENCH / "general" / "generate.py")
    generator.main(["--out", str(tmp_path)])
    written = (tmp_path / "heldout.jsonl").read_bytes()
    assert written == (BENCH / "general" / "heldout.jsonl").read_bytes(), "general/heldout.jsonl is stale"
    rows = generator.build()  # asserts that no question or distinctive topic word occurs in a task's prompts
    assert len(rows) == 24 and all(r["expect"] for r in rows)


@pytest.mark.parametrize(
    ("answer", "expect", "failed"),
    [
        ("The capital of France is Paris.", ["Paris"], []),
        ("Paris", ["Paris"], ["answers"]),  # one word is not an answer to a chat question
        ("The capital of France is Lyon.", ["Paris"], ["on_topic"]),
        ("TL;DR: The capital is Paris.\n\nParis is...", ["Paris"], ["no_template"]),
        ("I can't write that for you, but Paris is the capital.", ["Paris"], ["no_template"]),
        ("Paris is nice. Paris is nice. Paris is nice. Paris is nice.", ["Paris"], ["not_degenerate"]),
    ],
)
def test_general_answer_rule(answer, expect, failed):
    sys.path.insert(0, str(BENCH))
    try:
        from retention import general_answer_ok
    finally:
        sys.path.remove(str(BENCH))
    parts = general_answer_ok(answer, expect)
    assert [name for name, ok in parts.items() if name != "ok" and not ok] == failed
    assert parts["ok"] == (not failed)


def test_general_nll_scores_each_answer_with_its_end_of_turn(bench, tokenizer):
    sys.path.insert(0, str(BENCH))
    try:
        from retention import answer_ids, general_nll
    finally:
        sys.path.remove(str(BENCH))
    from tests.conftest import make_tiny_model

    prompt = [{"role": "user", "content": "Hello?"}]
    prompt_ids, ids = answer_ids(tokenizer, prompt, "Hi there.")
    assert tokenizer.decode(ids) == "Hi there.<|im_end|>" and tokenizer.decode(prompt_ids).endswith("assistant\n")
    model = make_tiny_model(tokenizer)
    rows = [{"prompt": prompt, "answer": "Hi there."}, {"prompt": prompt, "answer": "Good morning to you."}]
    # The pooled NLL is the token-weighted mean of the rows' own NLLs, each a mean over its answer tokens.
    (a, n_a), (b, n_b) = general_nll(model, tokenizer, rows[:1]), general_nll(model, tokenizer, rows[1:])
    pooled, n = general_nll(model, tokenizer, rows)
    assert n == n_a + n_b and pooled == pytest.approx((a * n_a + b * n_b) / n)
    with torch.no_grad():
        logps = torch.log_softmax(model(input_ids=torch.tensor([prompt_ids + ids])).logits[0], dim=-1)
    by_hand = -sum(float(logps[len(prompt_ids) + i - 1, t]) for i, t in enumerate(ids)) / len(ids)
    assert a == pytest.approx(by_hand, rel=1e-5)


def test_scoring_is_deterministic(bench, tiny_model_dir):
    score = bench["score"]
    model, tokenizer = score.load(str(tiny_model_dir))
    first = score.score("decline", model, tokenizer, limit=2, max_new_tokens=5, batch_size=3)
    second = score.score("decline", model, tokenizer, limit=2, max_new_tokens=5, batch_size=3)
    assert [a["answer"] for a in first.answers] == [a["answer"] for a in second.answers]
    assert [a["kind"] for a in first.answers] == ["target", "target", "control", "control"]
    assert first.summary()["n_target"] == 2 and "answers" not in first.summary()


def _front_row(recipe: str, task: str, gain: float, side: float, cost: float, engine: str = "prefalign") -> dict:
    return {"engine": engine, "recipe": recipe, "task": task, "behaviour_before": 0.1, "behaviour_after": 0.1 + gain,
            "side_effect_after": side, "peer_nll_change": cost}  # fmt: skip


def test_front_picks_the_cheapest_recipe_that_meets_the_behaviour_rule(tmp_path):
    front = _load("behaviour_front", BENCH / "front.py")
    rows = [
        *(_front_row("strong", t, 0.9, 0.0, 0.17) for t in ("tldr", "decline")),
        _front_row("cheap", "tldr", 0.6, 0.05, 0.03), _front_row("cheap", "decline", 0.55, 0.0, 0.04),
        _front_row("weak", "tldr", 0.9, 0.0, 0.01), _front_row("weak", "decline", 0.2, 0.0, 0.01),
        _front_row("noisy", "tldr", 0.9, 0.3, 0.02), _front_row("noisy", "decline", 0.9, 0.0, 0.02),
        _front_row("half", "tldr", 0.9, 0.0, 0.0),  # measured on one task only: not a point
        {"engine": "prefalign", "recipe": "old", "task": "tldr", "behaviour_after": 1.0},  # no peer column
    ]  # fmt: skip
    points = front.points(rows)
    assert {p.recipe for p in points} == {"strong", "cheap", "weak", "noisy"}
    cheap = next(p for p in points if p.recipe == "cheap")
    assert (cheap.gain, cheap.side_effect, cheap.cost) == (pytest.approx(0.55), 0.05, 0.04)  # the worse task's
    assert [p.recipe for p in front.front(points)] == ["weak", "noisy"]  # noisy beats strong and cheap on both
    chosen, why = front.choose(points)
    assert chosen.recipe == "cheap" and "meets the +5%" in why  # noisy's side effect (30%) rules it out
    chosen, why = front.choose([p for p in points if p.recipe != "cheap"])
    assert chosen.recipe == "strong" and "misses the +5%" in why  # qualifies, at +17%
    # With no recipe meeting the rule, the knee of the side-effect-free front.
    chosen, why = front.choose([p for p in points if p.recipe in ("weak", "noisy")])
    assert "no recipe reaches" in why and chosen.recipe == "weak"
    results = tmp_path / "results.jsonl"
    results.write_text("".join(json.dumps(r) + "\n" for r in rows))
    front.main(["--results", str(results), "--plot", str(tmp_path / "front.svg")])
    assert (tmp_path / "front.svg").read_text().lstrip().startswith("<?xml")


def test_front_averages_seeds_and_keeps_the_defaults_within_their_noise():
    front = _load("behaviour_front_seeds", BENCH / "front.py")
    rows = [
        _front_row("defaults", "tldr", 0.9, 0.0, 0.10), _front_row("defaults", "decline", 0.7, 0.0, 0.12),
        _front_row("defaults_seed1", "tldr", 0.8, 0.0, 0.10), _front_row("defaults_seed1", "decline", 0.7, 0.1, 0.09),
        _front_row("close", "tldr", 0.9, 0.0, 0.09), _front_row("close", "decline", 0.6, 0.0, 0.09),
    ]  # fmt: skip
    points = {p.recipe: p for p in front.points(rows)}
    assert set(points) == {"defaults", "close"}  # a seed is the same recipe, not a point of its own
    defaults = points["defaults"]
    assert defaults.seeds == 2 and defaults.gain == pytest.approx(0.7)  # the worse task's mean over seeds
    assert defaults.cost == pytest.approx(0.105) and defaults.side_effect == pytest.approx(0.05)
    assert front.noise(list(points.values())) == pytest.approx(0.03)  # decline's seeds: 12% and 9%
    # "close" qualifies and is 1.5 points cheaper, inside the 3-point noise: the defaults stay.
    chosen, why = front.choose(list(points.values()))
    assert chosen.recipe == "defaults" and "within the seeds' noise" in why and "close" in why
    # Cheaper by more than the noise: it replaces them.
    rows += [_front_row("cheaper", "tldr", 0.9, 0.0, 0.04), _front_row("cheaper", "decline", 0.6, 0.0, 0.05)]
    chosen, why = front.choose(front.points(rows))
    assert chosen.recipe == "cheaper" and "meets the +5%" in why


def test_front_keeps_rows_from_earlier_defaults_apart_unless_their_recipe_pinned_what_changed():
    front = _load("behaviour_front_defaults", BENCH / "front.py")
    today = front.todays_defaults()
    earlier = {**today, "lora_lr": today["lora_lr"] * 2}
    rows = [
        {**_front_row(recipe, task, 0.8, 0.0, cost), "defaults": ran, "recipe_value": value}
        for task in ("tldr", "decline")
        for recipe, ran, cost, value in [
            ("defaults", earlier, 0.11, []),  # ran on the earlier learning rate
            ("defaults_seed1", earlier, 0.10, []),
            ("defaults", today, 0.07, []),  # today's
            ("rpo1_beta0.3", earlier, 0.10, ["method.beta=0.3"]),  # took its learning rate from the defaults
            ("pinned_lr", earlier, 0.06, [f"train.lr={today['lora_lr'] / 2:g}"]),  # holds under today's defaults
        ]
    ]
    label = f" (lora_lr {earlier['lora_lr']:g})"
    points = {p.recipe: p for p in front.points(rows)}
    assert set(points) == {"defaults", f"defaults{label}", f"rpo1_beta0.3{label}", "pinned_lr"}
    assert points[f"defaults{label}"].seeds == 2 and points["defaults"].seeds == 1
    assert points["defaults"].cost == pytest.approx(0.07)  # today's defaults are not averaged with the earlier
    assert front.earlier_defaults({"engine": "trl", "recipe": "defaults", "defaults": None}) == ""
    # The incumbent: today's defaults, by name or by a recipe that restates their values (any seed).
    restating = [f"method.rpo_alpha={today['rpo_alpha']:g}", f"train.lr={today['lora_lr']}", "method.loss=sigmoid",
                 f"method.beta={today['beta']:g}"]  # fmt: skip
    assert front.runs_todays_defaults({"engine": "prefalign", "recipe": "x", "defaults": today,
                                       "recipe_value": [*restating, "train.seed=1"]})  # fmt: skip
    assert not front.runs_todays_defaults({"engine": "prefalign", "recipe": "x", "defaults": today,
                                           "recipe_value": [*restating, "method.beta=0.5"]})  # fmt: skip
    # naming the loss without a beta runs on beta's own default (0.1), not the recipe's (0.3)
    assert not front.runs_todays_defaults({"engine": "prefalign", "recipe": "x", "defaults": today,
                                           "recipe_value": restating[:-1]})  # fmt: skip
    assert [p.recipe for p in points.values() if p.incumbent] == ["defaults"]
    # rows written before beta joined the recipe ran on 0.1; a named loss pinned it, the bare defaults did not
    before_beta = {key: value for key, value in today.items() if key != "beta"}
    row = {"engine": "prefalign", "recipe": "defaults", "defaults": before_beta, "recipe_value": []}
    assert front.earlier_defaults(row, today) == " (beta 0.1)"
    assert front.earlier_defaults({**row, "recipe_value": ["method.loss=sigmoid"]}, today) == ""


def test_front_knee_is_the_point_farthest_from_the_chord():
    front = _load("behaviour_front_knee", BENCH / "front.py")
    line = [front.Point("p", name, gain, 0.0, cost, ("t",)) for name, gain, cost in
            [("a", 0.0, 0.0), ("b", 0.8, 0.1), ("c", 0.9, 0.5), ("d", 1.0, 1.0)]]  # fmt: skip
    assert front.knee(line).recipe == "b"


def test_where_splits_the_peer_rise_between_the_opening_and_the_rest():
    where = _load("behaviour_where", BENCH / "where.py")
    base = [[1.0, 1.0, 2.0], [1.0, 3.0]]  # opening = first 2 tokens: 6 nats over 4 tokens; rest: 2 nats over 1
    after = [[2.0, 1.0, 3.0], [1.0, 4.0]]  # opening +2 nats, rest +1 nat
    change = where.compare(base, after, opening=2)
    assert change["opening"] == pytest.approx(2 / 6) and change["rest"] == pytest.approx(1 / 2)
    assert change["whole"] == pytest.approx(3 / 8) and change["opening_share"] == pytest.approx(2 / 3)
    assert (change["opening_tokens"], change["rest_tokens"]) == (4, 1)
    # a token's rise is summed over every place it occurs: "a" rose 1 + 2 nats in two places, "b" not at all
    texts = [["a", "b"], ["a"]]
    assert where.risers(texts, [[1.0, 1.0], [1.0]], [[2.0, 1.0], [3.0]], n=2) == [("a", 3.0, 2), ("b", 0.0, 1)]


def test_a_row_from_before_the_train_device_key_is_still_the_same_cpu_measurement(monkeypatch):
    run = _load("behaviour_run_device", BENCH / "run.py")
    args = run.parse_args(["--task", "tldr"])
    monkeypatch.setattr(run, "train_device", lambda: "cpu")
    settings = run.run_settings(args, "tldr", "prefalign", "defaults")
    assert "train_device" not in settings  # a CPU row carries no key
    row = {**settings, "steps": 3, "behaviour_after": 0.5}  # as written before the key existed
    assert run._key(run._row_settings(row)) == run._key(settings)
    monkeypatch.setattr(run, "train_device", lambda: "cuda")
    gpu = run.run_settings(args, "tldr", "prefalign", "defaults")
    assert gpu["train_device"] == "cuda" and run._key(gpu) != run._key(settings)  # another measurement
    assert run._key(run._row_settings({**gpu, "steps": 3})) == run._key(gpu)  # and its row reads back as such
