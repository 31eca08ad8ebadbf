"""PostgreSQL store behaviour on a real server: the pushed-down ``$regex`` (``like_regex``)
selects exactly what Python ``re`` selects on the strings where the two engines could differ."""

from __future__ import annotations

import re

import pytest

import asyncdb

SUBJECTS = [
    "abc",
    "c\nx",
    "x\nab",
    "abc\n",
    "ab\nc",
    "a\nbc",
    "\nabc",
    "ABC",
    "aab",
    "ab",
    "x_ y",
    "é\n",
    "éa",
    "",
    "\u212ait",
    "\u017fI\u0131",
    "SKİ",
    "Ab",
]

PATTERNS = [
    ("^abc$", ""),
    ("c$", ""),
    ("b.c", ""),
    ("b.c", "s"),
    ("^a.", ""),
    ("a{2,3}b", ""),
    ("^[a-c]+$", ""),
    ("[^a-z]", ""),
    ("[^a-z]", "s"),
    ("^é.$", ""),
    ("_ y$", ""),
    ("", ""),
    ("^$", ""),
    ("^ab", "i"),
    ("kit", "i"),
    ("^s+i", "i"),
    ("sk.$", "is"),
    ("^ab", ""),
    ("^ab", "s"),
    ("c$", "s"),
]


@pytest.mark.parametrize(("pattern", "flags"), PATTERNS)
async def test_pushed_regex_matches_what_python_re_matches(
    postgres_url: str, pattern: str, flags: str
) -> None:
    async with asyncdb.connect(postgres_url) as db:
        items = db.collection("rx", allow_scan=True)
        await items.insert_many([{"id": i, "s": s} for i, s in enumerate(SUBJECTS)])
        await items.insert_one({"id": 100, "s": ["zz", "abc"]})
        await items.insert_one({"id": 101, "s": [["abc"]]})
        flt = {"s": {"$regex": pattern, "$options": flags}}
        plan = await items.explain(flt)
        assert plan.residual is None, plan
        got = sorted(d["id"] for d in await items.find(flt).to_list())
        bits = (re.S if "s" in flags else 0) | (re.I if "i" in flags else 0)
        want = [i for i, s in enumerate(SUBJECTS) if re.search(pattern, s, bits)]
        if re.search(pattern, "abc", bits) or re.search(pattern, "zz", bits):
            want.append(100)
        assert got == want, (pattern, flags)
