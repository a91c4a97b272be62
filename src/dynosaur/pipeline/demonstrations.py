"""The demonstrations: fixed, trusted examples of metadata → tasks shown before the real dataset.

As in the paper: SQuAD and ANLI for the variant with the description, MathQA and CommonGen for the one
without (`generate.demonstrations`), plus two style demonstrations shown before every fields-first request.
`copies_demonstration` and `copied_from_demonstration` tell when a proposed instruction is a copy of theirs
(the filter's `copies_demonstration`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict

from dynosaur.core.records import Feature, SourceMeta, TaskSpec
from dynosaur.pipeline.fields import FieldMapping
from dynosaur.pipeline.near_duplicates import rouge_l


class Demonstration(BaseModel):
    """A fixed, trusted example of metadata → tasks, shown before the real dataset."""

    model_config = ConfigDict(frozen=True)

    meta: SourceMeta
    tasks: list[TaskSpec]


def _demo_meta(
    name: str, description: str, fields: list[Feature], samples: list[dict[str, Any]]
) -> SourceMeta:
    return SourceMeta(
        source_id=name.lower(),
        origin=f"demonstration:{name}",
        kind="hub",
        location=name,
        revision="demonstration",
        pretty_name=name,
        description=description,
        features=fields,
        samples=samples,
    )


def _f(name: str, dtype: str = "string", classes: list[str] | None = None) -> Feature:
    return Feature(name=name, dtype=dtype, class_names=classes)


def _t(instruction: str, inputs: list[str], output: str) -> TaskSpec:
    return TaskSpec(instruction=instruction, input_fields=inputs, output_field=output)


# The tasks are the paper's own demonstrations (Yin et al. 2023, WadeYin9712/Dynosaur, Apache-2.0); the
# metadata and rows are short stand-ins written for this prompt, in the shape collect records.
SQUAD = Demonstration(
    meta=_demo_meta(
        "SQuAD",
        "Reading-comprehension questions that crowdworkers wrote about Wikipedia articles. The answer to "
        "every question is a span of text from the article's paragraph.",
        [_f("id"), _f("title"), _f("context"), _f("question"), _f("answers.text", "list<string>")],
        [
            {
                "id": "56be85543aeaaa14008c9063",
                "title": "Lighthouse",
                "context": "A lighthouse is a tower built to emit light from a system of lamps and lenses, "
                "serving as a navigational aid for ships at sea or on inland waterways.",
                "question": "What does a lighthouse help ships with?",
                "answers.text": ["navigational aid"],
            }
        ],
    ),
    tasks=[
        _t(
            "Please answer the question based on the Wikipedia article. The answer to every question is a "
            "segment of text, or span, from the corresponding reading passage.",
            ["title", "context", "question"],
            "answers.text",
        ),
        _t("Create a question provided the article.", ["context"], "question"),
        _t("Can you write a title for the passage?", ["context"], "title"),
    ],
)
ANLI = Demonstration(
    meta=_demo_meta(
        "ANLI",
        "Adversarial natural language inference: annotators wrote hypotheses meant to fool NLI models about "
        "a premise, and each pair is labelled entailment, neutral or contradiction.",
        [
            _f("uid"),
            _f("premise"),
            _f("hypothesis"),
            _f("label", "class_label", ["entailment", "neutral", "contradiction"]),
        ],
        [
            {
                "uid": "7e1a4f2c-r1",
                "premise": "The museum opened in 1901 and now holds over two million objects.",
                "hypothesis": "The museum is more than a century old.",
                "label": "entailment",
            }
        ],
    ),
    tasks=[
        _t(
            "Natural language inference (NLI) is the task of determining whether a hypothesis is "
            "entailment, contradiction, or neutral given a premise.",
            ["premise", "hypothesis"],
            "label",
        ),
        _t(
            "This task asks models to write a premise that entails, contradicts to, or is neutral to the "
            "hypothesis.",
            ["label", "hypothesis"],
            "premise",
        ),
    ],
)
MATHQA = Demonstration(
    meta=_demo_meta(
        "MathQA",
        "",
        [
            _f("Problem"),
            _f("Rationale"),
            _f("options"),
            _f("correct", "class_label", ["a", "b", "c", "d", "e"]),
            _f("annotated_formula"),
            _f("category"),
        ],
        [
            {
                "Problem": "a train 120 m long passes a pole in 6 seconds . what is its speed in km / hr ?",
                "Rationale": "speed = 120 / 6 = 20 m / s = 20 * 18 / 5 = 72 km / hr . answer : c",
                "options": "a ) 60 , b ) 66 , c ) 72 , d ) 78 , e ) 84",
                "correct": "c",
                "annotated_formula": "multiply(divide(120, 6), const_3_6)",
                "category": "physics",
            }
        ],
    ),
    tasks=[
        _t("Choose the correct answer for the math problem.", ["Problem", "options"], "correct"),
        _t("Help to provide the rationale for the question.", ["Problem"], "Rationale"),
        _t("Can you design a math problem based on the formula?", ["annotated_formula"], "Problem"),
    ],
)
COMMONGEN = Demonstration(
    meta=_demo_meta(
        "CommonGen",
        "",
        [_f("concept_set_idx", "int64"), _f("concepts", "list<string>"), _f("target")],
        [
            {
                "concept_set_idx": 412,
                "concepts": ["dog", "frisbee", "catch", "throw"],
                "target": "A man throws a frisbee and his dog jumps to catch it.",
            }
        ],
    ),
    tasks=[
        _t(
            "Given a set of common concepts; the task is to construct a coherent sentence describing an "
            "everyday scenario using these concepts.",
            ["concepts"],
            "target",
        ),
        _t("Extract the key concepts from the sentence.", ["target"], "concepts"),
    ],
)
DEMONSTRATIONS: dict[str, tuple[Demonstration, ...]] = {
    "with_description": (SQUAD, ANLI),
    "without_description": (MATHQA, COMMONGEN),
}
PAPER_DEMONSTRATION_INSTRUCTIONS: tuple[str, ...] = tuple(
    t.instruction for demos in DEMONSTRATIONS.values() for d in demos for t in d.tasks
)


# A copy keeps the demonstration's words; an adaptation swaps its nouns ("write a sentence that entails ..."
# for GLUE RTE against ANLI's "write a premise that entails ...", ROUGE-L 0.86). Below 0.9 it is the
# latter: the paper's own RTE, WNLI and review-writing tasks resemble the demonstrations and are fine (issue 19).
COPY_ROUGE = 0.9


def copies_demonstration(
    instruction: str, demos: Iterable[str] | None = None, threshold: float = COPY_ROUGE
) -> bool:
    """True when `instruction` is one of the demonstrations' instructions, verbatim or nearly (ROUGE-L F1 ≥
    threshold over lower-cased words): a small model copies them onto fields they do not fit."""
    shown = DEMONSTRATION_INSTRUCTIONS if demos is None else demos
    return bool(instruction.strip()) and any(rouge_l(instruction, demo) >= threshold for demo in shown)


def copied_from_demonstration(spec: TaskSpec, threshold: float = COPY_ROUGE) -> bool:
    """True when `spec` takes a demonstration task's instruction (`copies_demonstration`) but not its output
    field: the copy is pasted onto fields it does not fit. The same instruction over the same kind of output
    (a real SQuAD-like source asked for its answers) is a fine task."""
    fields = [spec.output_field] if isinstance(spec.output_field, str) else spec.output_field
    output = fields[0] if len(fields) == 1 else ""  # several outputs are another rule's business
    base = output.split(".", 1)[0].strip().lower()
    every = [d for demos in DEMONSTRATIONS.values() for d in demos] + [d for d, _ in STYLE_DEMONSTRATIONS]
    other_outputs = [
        t.instruction for d in every for t in d.tasks if str(t.output_field).split(".", 1)[0].lower() != base
    ]
    return copies_demonstration(spec.instruction, other_outputs, threshold)


# Two solved tasks shown before every fields-first request, rendered as the real one will be: they teach
# the answer's form (a specific imperative sentence in words, labels named) on made-up data far from any
# real source. `copies_demonstration` knows their instructions, so a copy onto other fields is rejected.
STYLE_DEMONSTRATIONS: tuple[tuple[Demonstration, FieldMapping], ...] = (
    (
        Demonstration(
            meta=_demo_meta(
                "Hotel reviews",
                "",
                [_f("review_body"), _f("stars", "class_label", ["1", "2", "3", "4", "5"]), _f("hotel_name")],
                [
                    {
                        "review_body": "Tiny room and the shower was cold, but the staff were kind.",
                        "stars": 2,
                    },
                    {"review_body": "Perfect location, spotless, and breakfast was a treat.", "stars": 4},
                ],
            ),
            tasks=[_t("Read the hotel review and rate it from 1 to 5 stars.", ["review_body"], "stars")],
        ),
        (["review_body"], "stars"),
    ),
    (
        Demonstration(
            meta=_demo_meta(
                "Recipe cards",
                "",
                [_f("ingredients_list", "list<string>"), _f("recipe_title")],
                [
                    {"ingredients_list": ["lentils", "onion", "cumin"], "recipe_title": "Spiced lentil soup"},
                    {"ingredients_list": ["apples", "oats", "butter"], "recipe_title": "Apple crumble"},
                ],
            ),
            tasks=[
                _t(
                    "Suggest a name for a dish made from these ingredients.",
                    ["ingredients_list"],
                    "recipe_title",
                )
            ],
        ),
        (["ingredients_list"], "recipe_title"),
    ),
)
# Every demonstration's instruction, the paper's and the style ones: what `copies_demonstration` checks.
DEMONSTRATION_INSTRUCTIONS: tuple[str, ...] = PAPER_DEMONSTRATION_INSTRUCTIONS + tuple(
    d.tasks[0].instruction for d, _ in STYLE_DEMONSTRATIONS
)
