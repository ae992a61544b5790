import pytest

from attnmt.data.corpus import read_parallel, read_tsv
from attnmt.errors import DataError


def test_misaligned_files_name_both_files_and_counts(tmp_path):
    (tmp_path / "a.de").write_text("eins\nzwei\n")
    (tmp_path / "a.en").write_text("one\n")
    with pytest.raises(DataError) as e:
        read_parallel(tmp_path / "a.de", tmp_path / "a.en")
    assert f"{tmp_path / 'a.de'} has 2 lines but {tmp_path / 'a.en'} has 1" in str(e.value)


def test_invalid_utf8_names_file_and_line(tmp_path):
    (tmp_path / "a.de").write_bytes(b"gut\nsehr gut\nbad \xff byte\n")
    (tmp_path / "a.en").write_text("good\nvery good\nbad byte\n")
    with pytest.raises(DataError, match=r"a.de line 3 is not valid UTF-8"):
        read_parallel(tmp_path / "a.de", tmp_path / "a.en")


def test_empty_and_long_lines_are_skipped_and_counted(tmp_path):
    (tmp_path / "a.de").write_text("eins\n\nzwei drei vier fünf\nsechs\n   \n")
    (tmp_path / "a.en").write_text("one\nnothing\ntwo three four five\n\nx\n")
    c = read_parallel(tmp_path / "a.de", tmp_path / "a.en", max_len=3)
    assert c.src == ["eins"] and c.tgt == ["one"] and c.line_numbers == [1]
    assert (c.skipped_empty, c.skipped_long) == (3, 1)
    assert c.summary() == ("a: 5 pairs read, 1 kept, 3 skipped as empty, "
                           "1 skipped as longer than the limit")


def test_tsv(tmp_path):
    (tmp_path / "p.tsv").write_text("hallo\thello\r\n\nwelt\tworld\n")
    c = read_tsv(tmp_path / "p.tsv")
    assert c.src == ["hallo", "welt"] and c.tgt == ["hello", "world"] and c.skipped_empty == 1
    (tmp_path / "bad.tsv").write_text("ok\tfine\nno tab here\n")
    with pytest.raises(DataError, match="bad.tsv line 2 has 1 fields; expected source<TAB>"):
        read_tsv(tmp_path / "bad.tsv")
