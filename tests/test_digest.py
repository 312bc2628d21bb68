"""Content hashes that name a sweep's units: canonical JSON (sorted keys, no spaces), so the same
value in any key order has one hash; and the first file named twice among several."""

from __future__ import annotations

import hashlib

from imc_sim.deploy.digest import first_repeat, sha256_bytes, sha256_json


def test_json_is_hashed_in_its_canonical_form():
    canonical = b'{"a":[1,2.5],"b":{"c":"d","e":null}}'
    assert sha256_json({"b": {"e": None, "c": "d"}, "a": [1, 2.5]}) == hashlib.sha256(canonical).hexdigest()
    assert sha256_bytes(canonical) == hashlib.sha256(canonical).hexdigest()


def test_the_first_repeat_is_the_earlier_file_and_the_later_one(tmp_path):
    a, b, c, d = (tmp_path / name for name in "abcd")
    a.write_bytes(b"one")
    b.write_bytes(b"two")
    c.write_bytes(b"one")  # a copy of a
    d.write_bytes(b"two")
    assert first_repeat([a, b]) is None and first_repeat([]) is None
    assert first_repeat([a, b, c, d]) == (a, c)
    assert first_repeat([b, a, a]) == (a, a)  # one file named twice
