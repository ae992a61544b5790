import pytest

from attnmt.data.corpus import read_lines
from attnmt.data.tokenizers import (
    BOS,
    EOS,
    PAD,
    UNK,
    CharTokenizer,
    SentencePieceTokenizer,
    Vocabs,
    WordTokenizer,
)


@pytest.fixture(scope="module")
def spm(request):
    from conftest import MULTI30K

    if not (MULTI30K / "train.de").is_file():
        pytest.skip("Multi30k not available")
    texts = read_lines(MULTI30K / "train.de")[:6000] + read_lines(MULTI30K / "train.en")[:6000]
    return SentencePieceTokenizer.train(texts, 2000)


def test_sentencepiece_round_trip_on_multi30k_val(spm, multi30k_dir):
    assert [spm.piece(i) for i in (PAD, UNK, BOS, EOS)] == ["<pad>", "<unk>", "<s>", "</s>"]
    lines = read_lines(multi30k_dir / "val.de") + read_lines(multi30k_dir / "val.en")
    bad = [x for x in lines if spm.decode(spm.encode(x)) != spm.normalize(x)]
    assert bad == []


def test_char_and_word_round_trip_and_unknowns():
    char = CharTokenizer.train(["über 가나", "abc"])
    assert char.decode(char.encode("über  가나")) == "über 가나"
    assert UNK in char.encode("xyz")
    word = WordTokenizer.train(["a b c", "a b"], vocab_size=6)
    assert word.decode(word.encode("a b")) == "a b"
    assert len(word) == 6 and word.encode("c")[0] == UNK  # c is the least frequent


def test_vocabs_save_and_load(tmp_path):
    v = Vocabs.train("word", ["a b"], ["x y z"], 100, joint=False)
    v.save(tmp_path)
    again = Vocabs.load(tmp_path)
    assert not again.joint and again.tgt.encode("z y") == v.tgt.encode("z y")
    j = Vocabs.train("char", ["ab"], ["cd"], 0, joint=True)
    j.save(tmp_path / "j")
    assert Vocabs.load(tmp_path / "j").joint


def test_a_mapped_vocabulary_reads_a_leading_language_token_as_one():
    """An imported multilingual Marian vocabulary: ``>>fra<<`` is its own id, in plain and
    in sampled segmentation alike; a code the vocabulary lacks is segmented as text."""
    from attnmt.data.tokenizers import (
        SPECIALS,
        MappedSentencePieceTokenizer,
        SentencePieceTokenizer,
    )

    texts = ["ein hund läuft im park", "zwei kinder spielen"] * 40
    spm = SentencePieceTokenizer.train(texts, 40)
    pieces = [spm.piece(i) for i in range(4, len(spm))]
    tok = MappedSentencePieceTokenizer(spm.proto, SPECIALS + pieces + [">>fra<<"])
    code = len(tok) - 1
    assert tok.encode(">>fra<< ein hund") == [code] + tok.encode("ein hund")
    assert tok.encode_sampled(">>fra<< ein hund", 0.5)[0] == code
    assert code not in tok.encode(">>deu<< ein hund")
    assert tok.decode(tok.encode("ein hund")) == "ein hund"
