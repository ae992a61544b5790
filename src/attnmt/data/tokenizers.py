"""Tokenizers: SentencePiece subwords, characters, whitespace words — one interface.

Special symbols have fixed ids in every vocabulary: ``<pad>`` 0, ``<unk>`` 1,
``<s>`` 2, ``</s>`` 3. A :class:`Vocabs` pair (source, target — the same object
with a joint vocabulary) is saved into the run folder and reloaded from there.
"""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..errors import DataError
from ..symbols import BOS, EOS, PAD, SPECIALS, UNK

__all__ = ["BOS", "EOS", "PAD", "SPECIALS", "UNK", "Tokenizer", "Vocabs"]
SPACE = "\u2581"  # "▁", the visible space SentencePiece also uses


class Tokenizer:
    """Text <-> ids. Subclasses define ``kind``, ``encode``, ``decode``, ``piece``."""

    kind = ""

    def encode(self, text: str) -> list[int]:
        raise NotImplementedError

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [self.encode(t) for t in texts]

    def decode(self, ids: Iterable[int]) -> str:
        raise NotImplementedError

    def piece(self, index: int) -> str:
        raise NotImplementedError

    def index_of(self, piece: str) -> int:
        """The id of a token string (the inverse of :meth:`piece`)."""
        raise NotImplementedError

    def word_index(self, ids: Sequence[int]) -> list[int]:
        """The whitespace word of the text each token belongs to (0, 1, ...), -1 for a token
        that belongs to none: what word alignments are counted in."""
        raise NotImplementedError

    def separator(self) -> list[int]:
        """The ids between two texts joined by a space: a space token where spaces are
        tokens (characters), nothing where each word carries its own boundary."""
        a, b, both = self.encode("a"), self.encode("b"), self.encode("a b")
        if both[: len(a)] != a or both[len(both) - len(b):] != b:
            return []
        return both[len(a): len(both) - len(b)]

    def continues_word(self, index: int) -> bool:
        """Whether this token, written next, would glue letters or digits onto the word
        before it (what a whole-word constraint may not be followed by). Words are whole
        tokens unless a subclass says otherwise."""
        return False

    def __len__(self) -> int:
        raise NotImplementedError

    def same_ids(self, other: Tokenizer) -> bool:
        """Whether ``other`` gives every token the id this one does (one embedding table can
        serve both: an imported source and target segmenter over one vocabulary)."""
        return other is self

    def save(self, path: Path) -> None:
        raise NotImplementedError


class SentencePieceTokenizer(Tokenizer):
    kind = "sentencepiece"

    def __init__(self, model_proto: bytes):
        import sentencepiece as spm

        self.proto = model_proto
        self.sp = spm.SentencePieceProcessor(model_proto=model_proto)

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int, model_type: str = "unigram"
              ) -> SentencePieceTokenizer:
        import sentencepiece as spm

        buf = io.BytesIO()
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(texts), model_writer=buf, vocab_size=vocab_size,
                model_type=model_type, pad_id=PAD, unk_id=UNK, bos_id=BOS, eos_id=EOS,
                character_coverage=1.0, hard_vocab_limit=False, max_sentence_length=1 << 16,
                input_sentence_size=2_000_000, shuffle_input_sentence=True, num_threads=2,
                minloglevel=2)
        except RuntimeError as e:
            raise DataError(f"SentencePiece training failed: {e}") from None
        return cls(buf.getvalue())

    def encode(self, text: str) -> list[int]:
        return self.sp.encode(text)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return self.sp.encode(texts, num_threads=2)

    def encode_sampled(self, text: str, alpha: float) -> list[int]:
        """One segmentation drawn from all of them, smoothed by ``alpha`` (subword
        regularisation); seeded by ``sentencepiece.set_random_generator_seed``."""
        return self.sp.encode(text, enable_sampling=True, alpha=alpha, nbest_size=-1)

    def decode(self, ids: Iterable[int]) -> str:
        return self.sp.decode([i for i in ids if i > EOS])

    def word_index(self, ids: Sequence[int]) -> list[int]:
        """A piece that starts with ``▁`` starts a word; the others continue it."""
        out, word = [], -1
        for i in ids:
            if word < 0 or self.piece(i).startswith(SPACE):
                word += 1
            out.append(word)
        return out

    def continues_word(self, index: int) -> bool:
        """A piece without the leading ``▁`` that starts with a letter or digit."""
        piece = self.piece(index)
        return index >= len(SPECIALS) and not piece.startswith(SPACE) and piece[:1].isalnum()

    def normalize(self, text: str) -> str:
        """The text as SentencePiece normalises it (what a round trip gives back)."""
        return self.sp.normalize(text).replace(SPACE, " ").strip()

    def piece(self, index: int) -> str:
        return self.sp.id_to_piece(int(index))

    def index_of(self, piece: str) -> int:
        return self.sp.piece_to_id(piece)

    def __len__(self) -> int:
        return self.sp.get_piece_size()

    def save(self, path: Path) -> None:
        path.with_suffix(".model").write_bytes(self.proto)


LANG_CODE = re.compile(r"^>>[^<>\s]+<<")


class MappedSentencePieceTokenizer(SentencePieceTokenizer):
    """SentencePiece segmentation with ids from a vocabulary of its own: an imported
    checkpoint's (Marian's ``vocab.json``, a fast tokenizer's table), whose ids are not
    the SentencePiece model's. ``symbols`` lists the pieces by id, ours first
    (``<pad> <unk> <s> </s>``); a piece the vocabulary lacks reads as ``<unk>``."""

    kind = "sentencepiece-mapped"

    def __init__(self, model_proto: bytes, symbols: list[str]):
        super().__init__(model_proto)
        self.symbols = list(symbols)
        self.index = {s: i for i, s in enumerate(self.symbols)}

    def _ids(self, pieces: list[str]) -> list[int]:
        return [self.index.get(p, UNK) for p in pieces]

    def encode(self, text: str) -> list[int]:
        return self.encode_batch([text])[0]

    def _code(self, text: str) -> tuple[list[int], str]:
        """A leading target-language token that the vocabulary holds (Marian's multilingual
        ``>>fra<<``) as its one id, and the rest of the text to segment."""
        m = LANG_CODE.match(text)
        if m and m.group(0) in self.index:
            return [self.index[m.group(0)]], text[m.end():].lstrip()
        return [], text

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        codes, rest = zip(*map(self._code, texts)) if texts else ((), ())
        pieces = self.sp.encode(list(rest), out_type=str, num_threads=2)
        return [code + self._ids(p) for code, p in zip(codes, pieces)]

    def encode_sampled(self, text: str, alpha: float) -> list[int]:
        code, rest = self._code(text)
        return code + self._ids(self.sp.encode(rest, out_type=str, enable_sampling=True,
                                               alpha=alpha, nbest_size=-1))

    def decode(self, ids: Iterable[int]) -> str:
        return self.sp.decode_pieces([self.symbols[i] for i in ids if i > EOS])

    def piece(self, index: int) -> str:
        return self.symbols[int(index)]

    def index_of(self, piece: str) -> int:
        return self.index.get(piece, UNK)

    def __len__(self) -> int:
        return len(self.symbols)

    def same_ids(self, other: Tokenizer) -> bool:
        return isinstance(other, MappedSentencePieceTokenizer) and other.symbols == self.symbols

    def save(self, path: Path) -> None:
        path.with_suffix(".spm").write_bytes(self.proto)
        path.with_suffix(".json").write_text(json.dumps(
            {"kind": self.kind, "symbols": self.symbols}, ensure_ascii=False))


class _ListTokenizer(Tokenizer):
    """A tokenizer over an explicit symbol list (characters or words)."""

    def __init__(self, symbols: list[str]):
        self.symbols = list(symbols)
        self.index = {s: i for i, s in enumerate(self.symbols)}

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = 0, **_) -> _ListTokenizer:
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(cls._split(text))
        ordered = sorted(counts, key=lambda s: (-counts[s], s))
        if vocab_size:
            ordered = ordered[: max(vocab_size - len(SPECIALS), 1)]
        return cls(SPECIALS + ordered)

    @staticmethod
    def _split(text: str) -> list[str]:
        raise NotImplementedError

    def encode(self, text: str) -> list[int]:
        return [self.index.get(s, UNK) for s in self._split(text)]

    def piece(self, index: int) -> str:
        return self.symbols[int(index)]

    def index_of(self, piece: str) -> int:
        return self.index.get(piece, UNK)

    def word_index(self, ids: Sequence[int]) -> list[int]:
        """Each token is one word."""
        return list(range(len(ids)))

    def __len__(self) -> int:
        return len(self.symbols)

    def save(self, path: Path) -> None:
        path.with_suffix(".json").write_text(
            json.dumps({"kind": self.kind, "symbols": self.symbols}, ensure_ascii=False))


class CharTokenizer(_ListTokenizer):
    kind = "char"

    @staticmethod
    def _split(text: str) -> list[str]:
        return [SPACE if c == " " else c for c in " ".join(text.split())]

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.symbols[i] for i in ids if i > EOS).replace(SPACE, " ")

    def continues_word(self, index: int) -> bool:
        """A letter or digit (not the space) continues the word before it."""
        return index >= len(SPECIALS) and self.symbols[int(index)][:1].isalnum()

    def word_index(self, ids: Sequence[int]) -> list[int]:
        """Characters up to a space are one word; the space itself belongs to none (-1)."""
        out, word = [], 0
        for i in ids:
            if self.symbols[int(i)] == SPACE:
                out.append(-1)
                word += 1
            else:
                out.append(word)
        return out


class WordTokenizer(_ListTokenizer):
    kind = "word"

    @staticmethod
    def _split(text: str) -> list[str]:
        return text.split()

    def decode(self, ids: Iterable[int]) -> str:
        return " ".join(self.symbols[i] for i in ids if i > EOS)


KINDS = {"sentencepiece": SentencePieceTokenizer, "char": CharTokenizer, "word": WordTokenizer}


def train_tokenizer(kind: str, texts: list[str], vocab_size: int,
                    model_type: str = "unigram") -> Tokenizer:
    if kind == "sentencepiece":
        return SentencePieceTokenizer.train(texts, vocab_size, model_type)
    return KINDS[kind].train(texts, vocab_size if kind == "word" else 0)


def load_tokenizer(path: Path) -> Tokenizer:
    """Load ``path.model`` (SentencePiece) or ``path.json`` (char/word)."""
    if path.with_suffix(".model").is_file():
        return SentencePieceTokenizer(path.with_suffix(".model").read_bytes())
    if path.with_suffix(".json").is_file():
        data = json.loads(path.with_suffix(".json").read_text())
        if data["kind"] == MappedSentencePieceTokenizer.kind:
            return MappedSentencePieceTokenizer(path.with_suffix(".spm").read_bytes(),
                                                data["symbols"])
        return KINDS[data["kind"]](data["symbols"])
    raise DataError(f"no vocabulary at {path}.model or {path}.json")


class Vocabs:
    """The source and target tokenizers of a run (one object when joint)."""

    def __init__(self, src: Tokenizer, tgt: Tokenizer):
        self.src, self.tgt = src, tgt

    @property
    def joint(self) -> bool:
        """One id space for both sides (one embedding table)."""
        return self.src is self.tgt or self.src.same_ids(self.tgt)

    @classmethod
    def train(cls, kind: str, src_texts: list[str], tgt_texts: list[str], vocab_size: int,
              joint: bool, model_type: str = "unigram") -> Vocabs:
        if joint:
            tok = train_tokenizer(kind, src_texts + tgt_texts, vocab_size, model_type)
            return cls(tok, tok)
        return cls(train_tokenizer(kind, src_texts, vocab_size, model_type),
                   train_tokenizer(kind, tgt_texts, vocab_size, model_type))

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if self.src is self.tgt:
            self.src.save(folder / "joint")
        else:
            self.src.save(folder / "src")
            self.tgt.save(folder / "tgt")

    @classmethod
    def load(cls, folder: str | Path) -> Vocabs:
        folder = Path(folder)
        if any(folder.glob("joint.*")):
            tok = load_tokenizer(folder / "joint")
            return cls(tok, tok)
        return cls(load_tokenizer(folder / "src"), load_tokenizer(folder / "tgt"))

    @classmethod
    def exists(cls, folder: str | Path) -> bool:
        folder = Path(folder)
        return any(folder.glob("joint.*")) or any(folder.glob("src.*"))
