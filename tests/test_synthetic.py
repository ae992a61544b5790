from attnmt.data.synthetic import ITEM_SEP, generate, write_task


def test_numbers_german_to_english_needs_reordering():
    pairs = generate("numbers", 200, "de", "en", 1, 1, seed=3, max_value=99)
    by_src = dict(pairs)
    assert by_src.get("siebenundachtzig", "eighty-seven") == "eighty-seven"
    assert all(" " not in s for s, _ in pairs)  # one German word per number below 100


def test_korean_groups_by_ten_thousand_and_digits():
    (src, tgt), = generate("numbers", 1, "ko", "digits", 1, 1, seed=0, max_value=10**6)
    assert tgt.isdigit()
    if int(tgt) >= 10**4:
        assert "만" in src


def test_deterministic_and_length_controlled(tmp_path):
    a = generate("numbers", 50, "de", "en", 2, 5, seed=7)
    assert a == generate("numbers", 50, "de", "en", 2, 5, seed=7)
    assert a != generate("numbers", 50, "de", "en", 2, 5, seed=8)
    counts = {s.count(ITEM_SEP) + 1 for s, _ in a}
    assert counts <= {2, 3, 4, 5} and len(counts) > 1
    assert all(s.count(ITEM_SEP) == t.count(ITEM_SEP) for s, t in a)
    info = write_task(tmp_path, "reverse", n=30, n_valid=5, n_test=10, min_items=3, max_items=4,
                      test_max_items=9, seed=1)
    src = (tmp_path / "test.src").read_text().splitlines()
    tgt = (tmp_path / "test.tgt").read_text().splitlines()
    assert info["test_max_items"] == 9 and len(src) == 10
    assert all(t.split() == s.split()[::-1] for s, t in zip(src, tgt))
    assert max(len(s.split()) for s in src) > 4


def test_dates_to_iso():
    pairs = generate("dates", 20, "de", "iso", 1, 1, seed=1)
    import datetime

    for s, t in pairs:
        d = datetime.date.fromisoformat(t)
        assert str(d.year) in s and str(d.day) in s
