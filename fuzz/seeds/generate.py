#!/usr/bin/env python3
"""Regenerate the fuzz seed corpora from the Cambria conformance cases and the hand-written lens
files in extra/. Run from anywhere: `python3 fuzz/seeds/generate.py`. The seeds are checked in, so
fuzzing needs no Python; this script only documents (and repeats) how they were made.

lens_file/<name>   a lens file (JSON for the Cambria cases, YAML for extra/*.yaml)
translate/<name>   lens file, one NUL byte, a JSON document (what fuzz/src/lib.rs `translate` reads)
"""
import json
import pathlib

here = pathlib.Path(__file__).resolve().parent
cases = here.parent.parent / "tests" / "conformance" / "cambria" / "cases.jsonl"
out = {name: here / name for name in ("lens_file", "translate")}
for d in out.values():
    d.mkdir(exist_ok=True)
    for old in d.iterdir():
        old.unlink()

for line in cases.read_text().splitlines():
    case = json.loads(line)
    lenses = [case["lens"]] if "lens" in case else [r["lens"] for r in case.get("registrations", [])]
    for i, lens in enumerate(lenses):
        name = case["id"] if len(lenses) == 1 else f"{case['id']}-{i}"
        text = json.dumps({"schemaName": case["id"], "lens": lens}, ensure_ascii=False)
        (out["lens_file"] / name).write_text(text)
        for key in ("input", "base"):
            doc = case.get(key)
            if isinstance(doc, (dict, list)):
                data = text.encode() + b"\0" + json.dumps(doc, ensure_ascii=False).encode()
                (out["translate"] / f"{name}-{key}").write_bytes(data)

for extra in sorted((here / "extra").glob("*.yaml")):
    lens, _, doc = extra.read_text().partition("\n---doc---\n")
    (out["lens_file"] / extra.stem).write_text(lens)
    if doc.strip():
        (out["translate"] / extra.stem).write_bytes(lens.encode() + b"\0" + doc.strip().encode())
