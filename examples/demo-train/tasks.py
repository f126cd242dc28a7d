"""Synthetic tasks for the demo model: arithmetic through the calculator, fact lookup in an offline
corpus through search/open, and finding and reading a file through the shell.

Everything is derived from one seed, so the corpus, the shared workspace and the task lists are
reproducible. Held-out tasks use entities, files and numbers that no training task uses.
"""
import json
import os
import random

SYLLABLES = ["ka", "ve", "lo", "ri", "tan", "mor", "sel", "qui", "dra", "bel", "tho", "nia", "gar",
             "zen", "pol", "cur", "hal", "vin", "sor", "mek", "lun", "fa", "dor", "ish", "bra", "nel"]
REGIONS = ["Ostrava Basin", "the Kell Highlands", "Lower Marrow", "the Pale Coast", "Eastern Tirn",
           "the Varn Plateau", "Southmere", "the Glass Valley"]
SEAS = ["Amber Sea", "Gulf of Orm", "Quiet Ocean", "Lake Sarn", "Bay of Teel"]
CITIES = ["Norrholm", "Castellan", "Pyrene", "Aldbury", "Veskar", "Tollmouth", "Irongate", "Selby",
          "Maravel", "Dunmore", "Ravenna Vale", "Kestrel Point"]
PROFESSIONS = ["painter", "chemist", "architect", "composer", "cartographer", "astronomer", "engineer",
               "poet"]
PRODUCTS = ["glass lenses", "river barges", "clockwork toys", "wool textiles", "paper maps", "bells"]
FILE_ATTRS = ["owner", "deadline", "budget", "status code", "room"]


def _name(rng, parts=2):
    return "".join(rng.choice(SYLLABLES) for _ in range(parts)).capitalize()


def _unique_names(rng, n, parts):
    seen, out = set(), []
    while len(out) < n:
        s = _name(rng, parts)
        if s not in seen:
            seen.add(s)
            out.append(s)
    return out


def make_entities(seed=1234, n=480):
    """Documents about invented rivers, people, companies and mountains, each with two facts."""
    rng = random.Random(seed)
    names = _unique_names(rng, n * 2, 3)
    ents = []
    for i in range(n):
        kind = ["river", "person", "company", "mountain"][i % 4]
        a, b = names[2 * i], names[2 * i + 1]
        if kind == "river":
            title = f"{a} River"
            length, region, sea = rng.randint(40, 3900), rng.choice(REGIONS), rng.choice(SEAS)
            facts = {"length": f"{length} km", "mouth": sea}
            text = (f"The {title} is a river in {region}.\n"
                    f"It rises in the hills above {rng.choice(CITIES)} and flows into the {sea}.\n"
                    f"The {title} is {length} km long.\n"
                    f"Its valley is known for {rng.choice(PRODUCTS)} and old stone mills.")
            qs = {"length": [f"How long is the {title}?", f"What is the length of the {title}?"],
                  "mouth": [f"Into which body of water does the {title} flow?"]}
        elif kind == "person":
            title = f"{a} {b}"
            year, town, prof = rng.randint(1700, 1990), rng.choice(CITIES), rng.choice(PROFESSIONS)
            facts = {"born": str(year), "town": town}
            text = (f"{title} was a {prof} from {town}.\n"
                    f"{title} was born in {year}.\n"
                    f"Their best known work was made in {rng.choice(CITIES)}.\n"
                    f"Later critics called {title} one of the finest {prof}s of the age.")
            qs = {"born": [f"In what year was {title} born?", f"When was {title} born?"],
                  "town": [f"Which town was {title} from?"]}
        elif kind == "company":
            title = f"{a} Works"
            year, city = rng.randint(1801, 2020), rng.choice(CITIES)
            facts = {"founded": str(year), "hq": city}
            text = (f"{title} is a company that makes {rng.choice(PRODUCTS)}.\n"
                    f"{title} was founded in {year}.\n"
                    f"Its headquarters are in {city}.\n"
                    f"It employs about {rng.randint(20, 9000)} people.")
            qs = {"founded": [f"In what year was {title} founded?", f"When was {title} founded?"],
                  "hq": [f"Where are the headquarters of {title}?", f"In which city is {title} based?"]}
        else:
            title = f"Mount {a}"
            height, region = rng.randint(800, 8800), rng.choice(REGIONS)
            facts = {"height": f"{height} metres", "region": region}
            text = (f"{title} is a mountain in {region}.\n"
                    f"{title} is {height} metres high.\n"
                    f"The first recorded ascent was in {rng.randint(1780, 1990)}.\n"
                    f"Its slopes are covered in pine and {rng.choice(['heather', 'snow', 'scree'])}.")
            qs = {"height": [f"How high is {title}?", f"What is the height of {title}?"],
                  "region": [f"In which region is {title}?"]}
        slug = title.lower().replace(" ", "-")
        ents.append({"docid": f"d{i:04d}", "url": f"https://demo.wiki/{slug}", "title": title, "text": text,
                     "kind": kind, "facts": facts, "questions": qs})
    return ents


# ----------------------------------------------------------------- the shell workspace

def make_files(rng, n_files, used_keywords):
    """A directory's worth of note files, each naming one project keyword and a few attributes."""
    files = {}
    for _ in range(n_files):
        kw = _name(rng, 3)
        while kw in used_keywords:
            kw = _name(rng, 3)
        used_keywords.add(kw)
        attrs = {
            "owner": rng.choice(["Mara", "Tobin", "Iset", "Corwin", "Lida", "Pavel", "Runa", "Ysolde"]),
            "deadline": f"20{rng.randint(26, 31)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            "budget": str(rng.randint(1000, 99000)),
            "status code": rng.choice(["green", "amber", "red"]) + "-" + str(rng.randint(10, 99)),
            "room": str(rng.randint(100, 999)),
        }
        folder = rng.choice(["notes", "projects", "docs", "archive"])
        path = f"{folder}/{_name(rng, 2).lower()}{rng.randint(1, 99)}.txt"
        while path in files:
            path = f"{folder}/{_name(rng, 2).lower()}{rng.randint(1, 99)}.txt"
        body = f"project: {kw}\n" + "".join(f"{k}: {v}\n" for k, v in attrs.items())
        files[path] = {"keyword": kw, "attrs": attrs, "text": body}
    return files


def write_files(root, files):
    for path, f in files.items():
        full = os.path.join(root, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as fh:
            fh.write(f["text"])


def file_question(rng, kw, attr):
    return rng.choice([f"Find the file about project {kw} and tell me its {attr}.",
                       f"What is the {attr} of project {kw}? It is written in one of the files here.",
                       f"Which {attr} is recorded for project {kw} in the files?"])


# ----------------------------------------------------------------- arithmetic

def arithmetic_task(rng):
    op = rng.choice(["*", "*", "+", "-", "*"])
    a = rng.randint(10, 99999)
    b = rng.randint(2, 9999) if op == "*" else rng.randint(10, 99999)
    expr = f"{a} {op} {b}"
    value = {"*": a * b, "+": a + b, "-": a - b}[op]
    q = rng.choice([f"What is {expr}?", f"Compute {expr}.", f"Calculate {expr}.", f"What is {expr} exactly?"])
    return {"type": "arith", "question": q, "expression": expr, "answer": str(value)}


# ----------------------------------------------------------------- task lists

def make_all(seed=1234, n_train_arith=1800, n_train_shell=1400, n_heldout_each=12):
    """Returns (entities, workspace_files, train_tasks, heldout_tasks).

    Training shell tasks get their own random directories (written by the data generator);
    held-out shell tasks all refer to the shared workspace shipped with the model."""
    rng = random.Random(seed + 1)
    ents = make_entities(seed)
    order = list(range(len(ents)))
    rng.shuffle(order)
    held_ents = set(order[: len(ents) // 4])
    train = []
    for _ in range(n_train_arith):
        train.append(arithmetic_task(rng))
    train_ent_ids = [i for i in range(len(ents)) if i not in held_ents]
    for i in train_ent_ids:  # every training question once: the same question gives the same trajectory
        e = ents[i]
        for attr, qs in e["questions"].items():
            for q in qs:
                train.append({"type": "lookup", "question": q, "entity": e["title"], "docid": e["docid"],
                              "attr": attr, "answer": e["facts"][attr]})
    used = set()
    ws_files = make_files(random.Random(seed + 2), 40, used)
    for t in range(n_train_shell):
        files = make_files(rng, rng.randint(3, 8), used)
        path = rng.choice(sorted(files))
        attr = rng.choice(FILE_ATTRS)
        kw = files[path]["keyword"]
        train.append({"type": "shell", "question": file_question(rng, kw, attr), "keyword": kw, "path": path,
                      "attr": attr, "answer": files[path]["attrs"][attr], "files": files})
    rng.shuffle(train)
    hrng = random.Random(seed + 3)
    held = []
    for _ in range(n_heldout_each):
        held.append(arithmetic_task(hrng))
    for i in sorted(held_ents)[:n_heldout_each]:
        e = ents[i]
        attr = hrng.choice(list(e["questions"]))
        held.append({"type": "lookup", "question": hrng.choice(e["questions"][attr]), "entity": e["title"],
                     "docid": e["docid"], "attr": attr, "answer": e["facts"][attr]})
    for path in sorted(ws_files)[:n_heldout_each]:
        attr = hrng.choice(FILE_ATTRS)
        kw = ws_files[path]["keyword"]
        held.append({"type": "shell", "question": file_question(hrng, kw, attr), "keyword": kw, "path": path,
                     "attr": attr, "answer": ws_files[path]["attrs"][attr]})
    for i, t in enumerate(train):
        t["id"] = f"train-{i:05d}"
    for i, t in enumerate(held):
        t["id"] = f"heldout-{i:03d}"
    return ents, ws_files, train, held


def write_corpus(path, ents):
    with open(path, "w") as f:
        for e in ents:
            f.write(json.dumps({"docid": e["docid"], "url": e["url"], "title": e["title"], "text": e["text"]}) + "\n")
