"""Generate the example fine-tuning dataset ``examples/data/elements.jsonl``.

What it writes
--------------
About 460 short chat conversations about the chemical elements, one JSON object
per line in the chat format tunewise reads::

    {"messages": [{"role": "user", "content": "..."},
                  {"role": "assistant", "content": "..."}]}

Each conversation asks one fact about one element (its symbol, the element with
a given symbol, its atomic number, the element with a given atomic number, its
atomic weight, its category, its group and period, or its state at room
temperature) or compares the atomic numbers of two elements.  About 5% of the
conversations have a second turn: a follow-up question about the same element,
so that training exercises loss masking over several assistant turns.

Why
---
``make demo`` needs a dataset that is small, free of third-party text, about a
single well-defined domain, and answered in one consistent house style, so that
a small chat model (SmolLM2-135M-Instruct) measurably learns both the facts and
the style after a few minutes of LoRA training on a CPU.  Facts are not
copyrightable; the table and every sentence template below were written for
this project.

How
---
Everything comes from the hand-written ``ELEMENTS`` table below.  The table is
checked against the structure of the periodic table (period and group are
recomputed from the atomic number) before anything is written.  Question
wording is picked from several paraphrase templates per kind by a
``random.Random`` with a fixed seed, and the rows are shuffled with the same
generator, so running the script twice writes byte-identical files.

Run it from the repository root (standard library only)::

    python examples/data/make_elements.py
"""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

SEED = 20240611
OUTPUT = Path(__file__).resolve().parent / "elements.jsonl"

# ---------------------------------------------------------------------------
# The table.
#
# Columns: atomic number, symbol, name (IUPAC spelling), atomic weight, category,
# group, period, state at room temperature.
#
# * Atomic weight: the IUPAC standard atomic weight rounded to two decimals
#   (lead is conventionally quoted as 207.2).  A value in square brackets, such
#   as "[294]", is the mass number conventionally quoted for an element with no
#   stable isotopes and no standard atomic weight.
# * Group: 1-18, or None for the lanthanides and actinides (the f-block).
# * State: "solid", "liquid" or "gas" at room temperature (about 20-25 degrees
#   Celsius) and normal pressure.  None where the element has never been made in
#   bulk, so its state is only predicted: astatine, francium and the elements
#   from fermium (100) on.  No state questions are asked about those.
# ---------------------------------------------------------------------------

AM = "alkali metal"
AEM = "alkaline earth metal"
TM = "transition metal"
PTM = "post-transition metal"
MD = "metalloid"
NM = "nonmetal"
HAL = "halogen"
NG = "noble gas"
LN = "lanthanide"
AN = "actinide"

S, L, G = "solid", "liquid", "gas"

ELEMENTS = [
    # Z, symbol, name, weight, category, group, period, state
    (1, "H", "hydrogen", "1.01", NM, 1, 1, G),
    (2, "He", "helium", "4.00", NG, 18, 1, G),
    (3, "Li", "lithium", "6.94", AM, 1, 2, S),
    (4, "Be", "beryllium", "9.01", AEM, 2, 2, S),
    (5, "B", "boron", "10.81", MD, 13, 2, S),
    (6, "C", "carbon", "12.01", NM, 14, 2, S),
    (7, "N", "nitrogen", "14.01", NM, 15, 2, G),
    (8, "O", "oxygen", "16.00", NM, 16, 2, G),
    (9, "F", "fluorine", "19.00", HAL, 17, 2, G),
    (10, "Ne", "neon", "20.18", NG, 18, 2, G),
    (11, "Na", "sodium", "22.99", AM, 1, 3, S),
    (12, "Mg", "magnesium", "24.31", AEM, 2, 3, S),
    (13, "Al", "aluminium", "26.98", PTM, 13, 3, S),
    (14, "Si", "silicon", "28.09", MD, 14, 3, S),
    (15, "P", "phosphorus", "30.97", NM, 15, 3, S),
    (16, "S", "sulfur", "32.06", NM, 16, 3, S),
    (17, "Cl", "chlorine", "35.45", HAL, 17, 3, G),
    (18, "Ar", "argon", "39.95", NG, 18, 3, G),
    (19, "K", "potassium", "39.10", AM, 1, 4, S),
    (20, "Ca", "calcium", "40.08", AEM, 2, 4, S),
    (21, "Sc", "scandium", "44.96", TM, 3, 4, S),
    (22, "Ti", "titanium", "47.87", TM, 4, 4, S),
    (23, "V", "vanadium", "50.94", TM, 5, 4, S),
    (24, "Cr", "chromium", "52.00", TM, 6, 4, S),
    (25, "Mn", "manganese", "54.94", TM, 7, 4, S),
    (26, "Fe", "iron", "55.85", TM, 8, 4, S),
    (27, "Co", "cobalt", "58.93", TM, 9, 4, S),
    (28, "Ni", "nickel", "58.69", TM, 10, 4, S),
    (29, "Cu", "copper", "63.55", TM, 11, 4, S),
    (30, "Zn", "zinc", "65.38", TM, 12, 4, S),
    (31, "Ga", "gallium", "69.72", PTM, 13, 4, S),
    (32, "Ge", "germanium", "72.63", MD, 14, 4, S),
    (33, "As", "arsenic", "74.92", MD, 15, 4, S),
    (34, "Se", "selenium", "78.97", NM, 16, 4, S),
    (35, "Br", "bromine", "79.90", HAL, 17, 4, L),
    (36, "Kr", "krypton", "83.80", NG, 18, 4, G),
    (37, "Rb", "rubidium", "85.47", AM, 1, 5, S),
    (38, "Sr", "strontium", "87.62", AEM, 2, 5, S),
    (39, "Y", "yttrium", "88.91", TM, 3, 5, S),
    (40, "Zr", "zirconium", "91.22", TM, 4, 5, S),
    (41, "Nb", "niobium", "92.91", TM, 5, 5, S),
    (42, "Mo", "molybdenum", "95.95", TM, 6, 5, S),
    (43, "Tc", "technetium", "[98]", TM, 7, 5, S),
    (44, "Ru", "ruthenium", "101.07", TM, 8, 5, S),
    (45, "Rh", "rhodium", "102.91", TM, 9, 5, S),
    (46, "Pd", "palladium", "106.42", TM, 10, 5, S),
    (47, "Ag", "silver", "107.87", TM, 11, 5, S),
    (48, "Cd", "cadmium", "112.41", TM, 12, 5, S),
    (49, "In", "indium", "114.82", PTM, 13, 5, S),
    (50, "Sn", "tin", "118.71", PTM, 14, 5, S),
    (51, "Sb", "antimony", "121.76", MD, 15, 5, S),
    (52, "Te", "tellurium", "127.60", MD, 16, 5, S),
    (53, "I", "iodine", "126.90", HAL, 17, 5, S),
    (54, "Xe", "xenon", "131.29", NG, 18, 5, G),
    (55, "Cs", "caesium", "132.91", AM, 1, 6, S),
    (56, "Ba", "barium", "137.33", AEM, 2, 6, S),
    (57, "La", "lanthanum", "138.91", LN, None, 6, S),
    (58, "Ce", "cerium", "140.12", LN, None, 6, S),
    (59, "Pr", "praseodymium", "140.91", LN, None, 6, S),
    (60, "Nd", "neodymium", "144.24", LN, None, 6, S),
    (61, "Pm", "promethium", "[145]", LN, None, 6, S),
    (62, "Sm", "samarium", "150.36", LN, None, 6, S),
    (63, "Eu", "europium", "151.96", LN, None, 6, S),
    (64, "Gd", "gadolinium", "157.25", LN, None, 6, S),
    (65, "Tb", "terbium", "158.93", LN, None, 6, S),
    (66, "Dy", "dysprosium", "162.50", LN, None, 6, S),
    (67, "Ho", "holmium", "164.93", LN, None, 6, S),
    (68, "Er", "erbium", "167.26", LN, None, 6, S),
    (69, "Tm", "thulium", "168.93", LN, None, 6, S),
    (70, "Yb", "ytterbium", "173.05", LN, None, 6, S),
    (71, "Lu", "lutetium", "174.97", LN, None, 6, S),
    (72, "Hf", "hafnium", "178.49", TM, 4, 6, S),
    (73, "Ta", "tantalum", "180.95", TM, 5, 6, S),
    (74, "W", "tungsten", "183.84", TM, 6, 6, S),
    (75, "Re", "rhenium", "186.21", TM, 7, 6, S),
    (76, "Os", "osmium", "190.23", TM, 8, 6, S),
    (77, "Ir", "iridium", "192.22", TM, 9, 6, S),
    (78, "Pt", "platinum", "195.08", TM, 10, 6, S),
    (79, "Au", "gold", "196.97", TM, 11, 6, S),
    (80, "Hg", "mercury", "200.59", TM, 12, 6, L),
    (81, "Tl", "thallium", "204.38", PTM, 13, 6, S),
    (82, "Pb", "lead", "207.2", PTM, 14, 6, S),
    (83, "Bi", "bismuth", "208.98", PTM, 15, 6, S),
    (84, "Po", "polonium", "[209]", PTM, 16, 6, S),
    (85, "At", "astatine", "[210]", HAL, 17, 6, None),
    (86, "Rn", "radon", "[222]", NG, 18, 6, G),
    (87, "Fr", "francium", "[223]", AM, 1, 7, None),
    (88, "Ra", "radium", "[226]", AEM, 2, 7, S),
    (89, "Ac", "actinium", "[227]", AN, None, 7, S),
    (90, "Th", "thorium", "232.04", AN, None, 7, S),
    (91, "Pa", "protactinium", "231.04", AN, None, 7, S),
    (92, "U", "uranium", "238.03", AN, None, 7, S),
    (93, "Np", "neptunium", "[237]", AN, None, 7, S),
    (94, "Pu", "plutonium", "[244]", AN, None, 7, S),
    (95, "Am", "americium", "[243]", AN, None, 7, S),
    (96, "Cm", "curium", "[247]", AN, None, 7, S),
    (97, "Bk", "berkelium", "[247]", AN, None, 7, S),
    (98, "Cf", "californium", "[251]", AN, None, 7, S),
    (99, "Es", "einsteinium", "[252]", AN, None, 7, S),
    (100, "Fm", "fermium", "[257]", AN, None, 7, None),
    (101, "Md", "mendelevium", "[258]", AN, None, 7, None),
    (102, "No", "nobelium", "[259]", AN, None, 7, None),
    (103, "Lr", "lawrencium", "[266]", AN, None, 7, None),
    (104, "Rf", "rutherfordium", "[267]", TM, 4, 7, None),
    (105, "Db", "dubnium", "[268]", TM, 5, 7, None),
    (106, "Sg", "seaborgium", "[269]", TM, 6, 7, None),
    (107, "Bh", "bohrium", "[270]", TM, 7, 7, None),
    (108, "Hs", "hassium", "[269]", TM, 8, 7, None),
    (109, "Mt", "meitnerium", "[278]", TM, 9, 7, None),
    (110, "Ds", "darmstadtium", "[281]", TM, 10, 7, None),
    (111, "Rg", "roentgenium", "[282]", TM, 11, 7, None),
    (112, "Cn", "copernicium", "[285]", TM, 12, 7, None),
    (113, "Nh", "nihonium", "[286]", PTM, 13, 7, None),
    (114, "Fl", "flerovium", "[289]", PTM, 14, 7, None),
    (115, "Mc", "moscovium", "[290]", PTM, 15, 7, None),
    (116, "Lv", "livermorium", "[293]", PTM, 16, 7, None),
    (117, "Ts", "tennessine", "[294]", HAL, 17, 7, None),
    (118, "Og", "oganesson", "[294]", NG, 18, 7, None),
]

# Lanthanum, lutetium, actinium and lawrencium sit at the edges of the f-block
# and are placed in group 3 by some tables and not by others.  To keep every
# answer uncontroversial, no group/period questions are asked about them.
DISPUTED_GROUP = {"La", "Lu", "Ac", "Lr"}

ARTICLE = {
    AM: "an",
    AEM: "an",
    TM: "a",
    PTM: "a",
    MD: "a",
    NM: "a",
    HAL: "a",
    NG: "a",
    LN: "a",
    AN: "an",
}


# ---------------------------------------------------------------------------
# Consistency checks: the hand-written table must agree with the layout of the
# periodic table, which is recomputed here from the atomic number alone.
# ---------------------------------------------------------------------------

PERIOD_ENDS = [2, 10, 18, 36, 54, 86, 118]  # atomic number of each noble gas


def expected_period(z: int) -> int:
    return next(p for p, end in enumerate(PERIOD_ENDS, start=1) if z <= end)


def expected_group(z: int) -> int | None:
    period = expected_period(z)
    pos = z - ([0] + PERIOD_ENDS)[period - 1]  # 1-based position in the period
    if period == 1:
        return 1 if pos == 1 else 18
    if period in (2, 3):
        return pos if pos <= 2 else pos + 10
    if period in (4, 5):
        return pos
    # Periods 6 and 7: two s-block columns, 15 f-block elements, then groups 4-18.
    if pos <= 2:
        return pos
    if pos <= 17:
        return None
    return pos - 14


def check_table() -> None:
    assert len(ELEMENTS) == 118
    assert [row[0] for row in ELEMENTS] == list(range(1, 119))
    assert len({row[1] for row in ELEMENTS}) == 118
    assert len({row[2] for row in ELEMENTS}) == 118
    for z, sym, name, weight, cat, group, period, state in ELEMENTS:
        assert period == expected_period(z), (name, period)
        assert group == expected_group(z), (name, group)
        assert cat in ARTICLE, (name, cat)
        assert (group is None) == (cat in (LN, AN)), name
        assert state in (S, L, G, None), name
        if cat == AM:
            assert group == 1 and sym != "H", name
        if cat == AEM:
            assert group == 2, name
        if cat == HAL:
            assert group == 17, name
        if cat == NG:
            assert group == 18, name
        if cat == TM:
            assert 3 <= group <= 12, name
        if weight.startswith("["):
            assert weight[1:-1].isdigit(), name
        else:
            float(weight)
    gases = {row[1] for row in ELEMENTS if row[7] == G}
    assert gases == {"H", "N", "O", "F", "Cl", "He", "Ne", "Ar", "Kr", "Xe", "Rn"}
    assert {row[1] for row in ELEMENTS if row[7] == L} == {"Br", "Hg"}


# ---------------------------------------------------------------------------
# Question templates (several paraphrases per kind) and the house-style
# answers.  ``e`` is an element as a dict; ``{name}`` is lower case inside a
# sentence and capitalised at its start.
# ---------------------------------------------------------------------------


def cap(text: str) -> str:
    return text[0].upper() + text[1:]


QUESTIONS = {
    "symbol": [
        "What is the chemical symbol of {name}?",
        "What is the symbol for {name}?",
        "Which chemical symbol does {name} have?",
        "How is {name} written as a chemical symbol?",
        "Give the element symbol for {name}.",
    ],
    "symbol_to_name": [
        "Which element has the symbol {sym}?",
        "What element does the symbol {sym} stand for?",
        "Which element is represented by the chemical symbol {sym}?",
        "What is the name of the element with symbol {sym}?",
        "The chemical symbol {sym} belongs to which element?",
    ],
    "atomic_number": [
        "What is the atomic number of {name}?",
        "What is {name}'s atomic number?",
        "How many protons does an atom of {name} have?",
        "Which atomic number does {name} have?",
        "Give the atomic number of {name}.",
    ],
    "number_to_name": [
        "Which element has atomic number {z}?",
        "What is element number {z}?",
        "Which element has {z} protons in its nucleus?",
        "Name the element with atomic number {z}.",
        "What element is number {z} on the periodic table?",
    ],
    "atomic_weight": [
        "What is the atomic weight of {name}?",
        "What is the standard atomic weight of {name}?",
        "What atomic mass is listed for {name} on the periodic table?",
        "Give the atomic mass of {name}.",
        "What is the relative atomic mass of {name}?",
    ],
    "category": [
        "What kind of element is {name}?",
        "Which category of elements does {name} belong to?",
        "Which family of elements is {name} part of?",
        "How is {name} classified on the periodic table?",
        "What type of element is {name}?",
    ],
    "group_period": [
        "In which group and period is {name}?",
        "Where is {name} on the periodic table?",
        "What are the group and period of {name}?",
        "Which group and which period of the periodic table contain {name}?",
        "Give the group and period of {name}.",
    ],
    "state": [
        "Is {name} a solid, a liquid or a gas at room temperature?",
        "What is the state of {name} at room temperature?",
        "At room temperature, is {name} solid, liquid or gaseous?",
        "In what state is {name} found at room temperature?",
        "What phase is {name} in at room temperature?",
    ],
    "compare": [
        "Which has the higher atomic number, {a} or {b}?",
        "Which element has more protons, {a} or {b}?",
        "Between {a} and {b}, which has the larger atomic number?",
        "Does {a} or {b} come later in the periodic table?",
    ],
}

# Follow-up questions for two-turn conversations; they refer to the element of
# the first turn as "it".
FOLLOW_UPS = {
    "symbol": ["And what is its chemical symbol?", "What is its symbol?"],
    "atomic_number": ["And what is its atomic number?", "What is its atomic number?"],
    "atomic_weight": ["And its atomic weight?", "What is its atomic weight?"],
    "category": ["What kind of element is it?", "And which category does it belong to?"],
    "group_period": ["Where is it on the periodic table?", "And its group and period?"],
    "state": ["Is it a solid, a liquid or a gas at room temperature?", "And what is its state at room temperature?"],
}


def answer(kind: str, e: dict) -> str:
    name, sym, z = e["name"], e["sym"], e["z"]
    if kind == "symbol":
        return f"The chemical symbol of {name} is {sym}."
    if kind == "symbol_to_name":
        return f"The symbol {sym} stands for {name}, element {z}."
    if kind == "atomic_number":
        return f"The atomic number of {name} is {z}."
    if kind == "number_to_name":
        return f"Element {z} is {name} ({sym})."
    if kind == "atomic_weight":
        w = e["weight"]
        if w.startswith("["):
            return (
                f"{cap(name)} has no stable isotopes, so its atomic weight is "
                f"usually given as the mass number {w[1:-1]}."
            )
        return f"The standard atomic weight of {name} is about {w}."
    if kind == "category":
        return f"{cap(name)} is classified as {ARTICLE[e['cat']]} {e['cat']}."
    if kind == "group_period":
        if e["group"] is None:
            family = "lanthanides" if e["cat"] == LN else "actinides"
            return (
                f"{cap(name)} is in period {e['period']}; it is one of the "
                f"{family}, which are not assigned a group number."
            )
        return f"{cap(name)} is in group {e['group']} and period {e['period']} of the periodic table."
    if kind == "state":
        return f"{cap(name)} is a {e['state']} at room temperature."
    raise ValueError(kind)


def turn(role: str, content: str) -> dict:
    return {"role": role, "content": content}


# How many conversations of each kind to write.
COUNTS = {
    "symbol": 60,
    "symbol_to_name": 55,
    "atomic_number": 55,
    "number_to_name": 55,
    "atomic_weight": 50,
    "category": 55,
    "group_period": 50,
    "state": 45,
    "compare": 30,
}
TWO_TURN_FRACTION = 0.05


def eligible(kind: str, e: dict) -> bool:
    if kind == "group_period":
        return e["sym"] not in DISPUTED_GROUP
    if kind == "state":
        return e["state"] is not None
    return True


def build(rng: random.Random) -> tuple[list[dict], Counter]:
    elements = [
        dict(zip(("z", "sym", "name", "weight", "cat", "group", "period", "state"), row))
        for row in ELEMENTS
    ]
    rows: list[tuple[str, dict, list[dict]]] = []  # (kind, element or None, messages)

    for kind, count in COUNTS.items():
        templates = QUESTIONS[kind]
        if kind == "compare":
            pairs: set[tuple[int, int]] = set()
            while len(pairs) < count:
                a, b = rng.sample(range(118), 2)
                if (a, b) in pairs or (b, a) in pairs:
                    continue
                pairs.add((a, b))
                ea, eb = elements[a], elements[b]
                hi, lo = (ea, eb) if ea["z"] > eb["z"] else (eb, ea)
                q = rng.choice(templates).format(a=ea["name"], b=eb["name"])
                ans = (
                    f"{cap(hi['name'])} has the higher atomic number: "
                    f"{hi['z']}, compared with {lo['z']} for {lo['name']}."
                )
                rows.append((kind, None, [turn("user", q), turn("assistant", ans)]))
            continue
        pool = [e for e in elements if eligible(kind, e)]
        for e in rng.sample(pool, count):
            q = rng.choice(templates).format(name=e["name"], sym=e["sym"], z=e["z"])
            rows.append((kind, e, [turn("user", q), turn("assistant", answer(kind, e))]))

    # Turn a few single-element conversations into two-turn ones by adding a
    # follow-up question of a different kind about the same element.
    kinds = Counter(kind for kind, _, _ in rows)
    single = [i for i, (kind, e, _) in enumerate(rows) if e is not None]
    n_two = round(TWO_TURN_FRACTION * len(rows))
    for i in sorted(rng.sample(single, n_two)):
        kind, e, messages = rows[i]
        options = [
            k for k in FOLLOW_UPS
            if k != kind
            and not (kind == "symbol_to_name" and k == "symbol")
            and not (kind == "number_to_name" and k == "atomic_number")
            and eligible(k, e)
        ]
        follow = rng.choice(options)
        messages.append(turn("user", rng.choice(FOLLOW_UPS[follow])))
        messages.append(turn("assistant", answer(follow, e)))
        kinds[f"follow-up: {follow}"] += 1

    rng.shuffle(rows)
    return [{"messages": messages} for _, _, messages in rows], kinds


def main() -> None:
    check_table()
    rng = random.Random(SEED)
    conversations, kinds = build(rng)
    with OUTPUT.open("w", encoding="utf-8", newline="\n") as f:
        for conv in conversations:
            for m in conv["messages"]:
                assert m["content"] == m["content"].strip()
                if m["role"] == "assistant":
                    assert m["content"].endswith(".")
            f.write(json.dumps(conv, ensure_ascii=False) + "\n")
    two_turn = sum(len(c["messages"]) == 4 for c in conversations)
    print(f"wrote {len(conversations)} conversations ({two_turn} with two turns) to {OUTPUT}")
    for kind, n in sorted(kinds.items()):
        print(f"  {kind:32s} {n}")


if __name__ == "__main__":
    main()
