"""Builds a small BrowseComp-style evaluation set over a synthetic offline corpus.

Writes, next to this script:
  corpus.jsonl    about 300 documents {docid, url, title, text} about invented towns, people and
                  companies (nothing here is true of the real world, so a model must search)
  questions.csv   40 multi-hop questions in BrowseComp's encrypted CSV format (problem, answer,
                  problem_topic, canary), each needing 2-4 searches/opens to answer
  questions.jsonl the same questions in plain JSONL {id, question, answer, hops} for inspection
                  (it holds the answers: keep it out of any corpus)

Deterministic (seeded). Usage: python3 examples/browse-eval/make_eval_set.py
Then: dsagent index examples/browse-eval/corpus.jsonl --out corpus.db
"""
import base64
import csv
import hashlib
import json
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
CANARY = "DSAGENT EVAL DATA. canary GUID dsagent-browse-eval:9c1d2e3f-4a5b-4c6d-8e7f-0a1b2c3d4e5f"
SYL = ["ka", "lo", "mi", "ren", "sa", "tor", "vel", "qu", "an", "dor", "el", "fi", "gan", "hol", "ist",
       "jar", "kel", "mor", "nia", "os", "pra", "ril", "sten", "tu", "ur", "vin", "wen", "yor", "zel", "bre"]
TRADES = ["glassware", "river ferries", "clockwork toys", "salt refining", "paper mills", "bell casting",
          "wool dyeing", "lantern oil", "map printing", "copper wire"]
INSTRUMENTS = ["cello", "oboe", "harp", "zither", "trumpet", "viola", "lute", "bassoon"]


def word(rng, n):
    return "".join(rng.choice(SYL) for _ in range(n)).capitalize()


def encrypt(text, password):
    data = text.encode()
    key = hashlib.sha256(password.encode()).digest()
    key = key * (len(data) // len(key)) + key[: len(data) % len(key)]
    return base64.b64encode(bytes(a ^ b for a, b in zip(data, key))).decode()


def main():
    rng = random.Random(20261202)
    used = set()

    def unique(n):
        while True:
            w = word(rng, n)
            if w not in used:
                used.add(w)
                return w

    towns = []
    for i in range(90):
        towns.append({"name": unique(3), "population": rng.randrange(1200, 98000),
                      "founded": rng.randrange(1150, 1890), "river": unique(2) + " River"})
    people = []
    for i in range(100):
        people.append({"name": unique(2) + " " + unique(3), "born": rng.choice(towns),
                       "year": rng.randrange(1820, 1990), "instrument": rng.choice(INSTRUMENTS)})
    companies = []
    for i in range(90):
        companies.append({"name": unique(2) + " " + rng.choice(["Works", "Company", "Guild", "Brothers"]),
                          "founder": rng.choice(people), "town": rng.choice(towns),
                          "trade": rng.choice(TRADES), "year": rng.randrange(1850, 2010)})

    docs = []
    for t in towns:
        docs.append({"docid": "town-" + t["name"].lower(), "url": "https://atlas.example/" + t["name"].lower(),
                     "title": t["name"] + " (town)",
                     "text": f"{t['name']} is a town on the {t['river']}. It was founded in {t['founded']}. "
                             f"At the last census {t['name']} had a population of {t['population']}.\n\n"
                             f"The town is known for its market square and its stone bridge over the {t['river']}."})
    for p in people:
        docs.append({"docid": "person-" + p["name"].lower().replace(" ", "-"),
                     "url": "https://people.example/" + p["name"].lower().replace(" ", "_"),
                     "title": p["name"],
                     "text": f"{p['name']} (born {p['year']}) is a musician and entrepreneur. {p['name'].split()[0]} was born "
                             f"in the town of {p['born']['name']} and plays the {p['instrument']}.\n\n"
                             f"Early life: {p['name']} grew up near the {p['born']['river']}."})
    for c in companies:
        docs.append({"docid": "company-" + c["name"].lower().replace(" ", "-"),
                     "url": "https://firms.example/" + c["name"].lower().replace(" ", "-"),
                     "title": c["name"],
                     "text": f"{c['name']} is a maker of {c['trade']} based in {c['town']['name']}. "
                             f"The firm was founded in {c['year']} by {c['founder']['name']}.\n\n"
                             f"History: the company began as a small workshop and grew through the trade in {c['trade']}."})
    for i in range(30):  # distractors that mention names without the facts
        p = rng.choice(people)
        docs.append({"docid": f"news-{i}", "url": f"https://news.example/{i}", "title": f"Concert review {i}",
                     "text": f"Last night's concert featured a {rng.choice(INSTRUMENTS)} recital. "
                             f"Some in the audience compared it to the style of {p['name']}."})
    rng.shuffle(docs)

    questions = []
    for c in rng.sample(companies, 15):  # company -> founder -> birth town -> population (3-4 hops)
        questions.append({"question": f"The company {c['name']} was founded by a musician. What was the population, "
                                      f"at the last census, of the town where that founder was born?",
                          "answer": str(c["founder"]["born"]["population"]), "hops": 3})
    for c in rng.sample(companies, 10):  # company -> town -> river (2 hops)
        questions.append({"question": f"On which river lies the town where {c['name']} is based?",
                          "answer": c["town"]["river"], "hops": 2})
    for c in rng.sample(companies, 8):  # company -> founder -> instrument (2 hops)
        questions.append({"question": f"Which instrument does the founder of {c['name']} play?",
                          "answer": c["founder"]["instrument"], "hops": 2})
    for p in rng.sample(people, 7):  # person -> town -> founding year (2 hops)
        questions.append({"question": f"In which year was the birthplace of {p['name']} founded?",
                          "answer": str(p["born"]["founded"]), "hops": 2})
    for i, q in enumerate(questions):
        q["id"] = f"q{i:02d}"

    with open(os.path.join(HERE, "corpus.jsonl"), "w") as f:
        for d in docs:
            f.write(json.dumps(d, ensure_ascii=False) + "\n")
    with open(os.path.join(HERE, "questions.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["problem", "answer", "problem_topic", "canary"])
        for q in questions:
            w.writerow([encrypt(q["question"], CANARY), encrypt(q["answer"], CANARY), f"{q['hops']}-hop", CANARY])
    with open(os.path.join(HERE, "questions.jsonl"), "w") as f:
        for q in questions:
            f.write(json.dumps(q, ensure_ascii=False) + "\n")
    print(f"{len(docs)} documents, {len(questions)} questions")


if __name__ == "__main__":
    main()
