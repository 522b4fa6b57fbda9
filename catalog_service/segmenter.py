"""jieba with its dictionary in ~5 MB of strings instead of ~66 MB, segmenting exactly as jieba.

jieba keeps its dictionary in ``Tokenizer.FREQ``: a dict from each of its ~349k words to the
word's frequency, plus every proper prefix of a word mapped to 0 (``get_DAG`` extends a fragment
of the sentence one character at a time while the fragment is still the prefix of some word).
That is ~498k small ``str`` keys at ~80 bytes each plus the dict's own table: ~66 MB resident,
over a quarter of the catalog service's memory, for a few thousand look-ups per search.

jieba reads ``FREQ`` only through ``fragment in FREQ``, ``FREQ[fragment]`` and
``FREQ.get(fragment[, default])`` (the writers ``add_word``/``del_word``/``suggest_freq`` are
never called on our private tokenizer). :class:`CompactFrequencies` answers those three exactly
as jieba's dict would — same frequency for every word, 0 for every proper prefix, missing for
everything else, same ``total`` — so every segmentation is the same, for any text, not only for
the catalogue's. ``tests/catalog/test_search_memory.py`` compares it with jieba's own dict entry
by entry.

Nothing here touches the database or the network.
"""

from __future__ import annotations

import logging
import re
import sys
from operator import itemgetter
from typing import BinaryIO, overload

# jieba's ``_compat`` imports ``pkg_resources`` (if setuptools is installed) only to open its
# bundled files, and pkg_resources alone costs ~10 MB resident. Without it jieba opens the same
# files with ``open()``. Hide it while jieba is imported, unless something has already imported
# it (then there is nothing to save), and leave ``sys.modules`` as it was.
_HIDE_PKG_RESOURCES = "pkg_resources" not in sys.modules
if _HIDE_PKG_RESOURCES:
    sys.modules["pkg_resources"] = None  # type: ignore[assignment]
try:
    import jieba
finally:
    if _HIDE_PKG_RESOURCES:
        del sys.modules["pkg_resources"]

# jieba logs "Building prefix dict…" at DEBUG on first use; the service's logs should not.
jieba.setLogLevel(logging.WARNING)

# A line that is not "word frequency [tag]", the form of every line in jieba's own dict.txt and
# one that ``gen_pfdict`` reads as we do; anything else is refused rather than guessed at.
_BAD_LINE = re.compile(r"^(?!\S+ [0-9]+(?: [^\n]*)?$)", re.MULTILINE)
# Consecutive lines of the dictionary file whose words start with the same character.
_FILE_RUN = re.compile(r"(\S)[^\n]*\n(?:\1[^\n]*\n)*")


class CompactFrequencies:
    """The read-only part of jieba's ``FREQ`` dict, built from a jieba dictionary file.

    All records, ``"\\n<word>\\t<frequency>"``, live in one string, grouped by the first
    character of the word and sorted by word within a group::

        "…\\n不\\t…\\n不动产\\t…\\n不动产登记\\t…\\n社\\t…\\n社保\\t…\\n"

    and ``_groups`` maps each first character to the span of its group. A word's frequency is
    the number after ``"\\n" + word + "\\t"`` in its group; a fragment is a prefix of some word
    when ``"\\n" + fragment`` occurs in its group. Either is one ``str.find`` over one group (at
    most a few tens of KB, in C), a few microseconds; jieba's dict takes ~50 ns, which matters
    little next to jieba's own Python per character (segmenting is ~4x slower overall).

    The build must not need much memory either, or the process would peak where the dict used
    to stay: it never holds more than one group's lines as separate objects (the file is split
    into runs of lines by first character in C). Building and freeing a list of all 349k
    entries instead would peak ~80 MB higher, above the whole process's budget.
    """

    def __init__(self, dictionary: BinaryIO) -> None:
        text = dictionary.read().decode("utf-8")
        if text and not text.endswith("\n"):
            text += "\n"
        bad = _BAD_LINE.search(text, 0, len(text) - 1)
        if text and bad is not None:
            line = text[bad.start() : text.index("\n", bad.start())]
            raise ValueError(f"not a jieba dictionary line ('word frequency [tag]'): {line!r}")
        # jieba's dict.txt is nearly, not quite, grouped by first character: collect the runs.
        runs: dict[str, list[str]] = {}
        for run in _FILE_RUN.finditer(text):
            runs.setdefault(run[1], []).append(run[0])
        del text
        self._groups = dict.fromkeys(runs, (0, 0))
        self.total = 0
        groups: list[str] = []
        end = 0
        for first, lines in runs.items():
            entries = [line.split(" ", 2)[:2] for line in "".join(lines).splitlines()]
            # jieba's total counts every line, a repeated word (B超) too ...
            self.total += sum(int(frequency) for _, frequency in entries)
            # ... and its dict keeps the last line of a repeated word, whereas find() returns
            # the first record: reverse, then a stable sort by word keeps that order.
            entries.reverse()
            entries.sort(key=itemgetter(0))
            group = "".join(f"\n{word}\t{int(frequency)}" for word, frequency in entries)
            self._groups[first] = (end, end + len(group))
            end += len(group)
            groups.append(group)
        del runs
        groups.append("\n")
        self._text = "".join(groups)

    def _frequency(self, word: str) -> int | None:
        """The word's frequency, 0 if it is only the prefix of a word, ``None`` if neither."""
        if not word or "\n" in word or "\t" in word:
            return None
        group = self._groups.get(word[0])
        if group is None:
            return None
        # Records are sorted by word and a word sorts before the longer words it begins, so the
        # first record starting with ``word`` is the word's own record when it has one.
        found = self._text.find(f"\n{word}", *group)
        if found < 0:
            return None
        found += len(word) + 1
        if self._text[found] != "\t":
            return 0
        return int(self._text[found + 1 : self._text.index("\n", found)])

    def __contains__(self, fragment: object) -> bool:
        if not isinstance(fragment, str) or not fragment or "\n" in fragment or "\t" in fragment:
            return False
        group = self._groups.get(fragment[0])
        return group is not None and self._text.find(f"\n{fragment}", *group) >= 0

    def __getitem__(self, fragment: str) -> int:
        frequency = self._frequency(fragment)
        if frequency is None:
            raise KeyError(fragment)
        return frequency

    @overload
    def get(self, fragment: str) -> int | None: ...
    @overload
    def get(self, fragment: str, default: int) -> int: ...
    def get(self, fragment: str, default: int | None = None) -> int | None:
        frequency = self._frequency(fragment)
        return default if frequency is None else frequency


class CompactTokenizer(jieba.Tokenizer):
    """A ``jieba.Tokenizer`` on jieba's default dictionary whose ``FREQ`` is a
    :class:`CompactFrequencies`. Everything else (segmentation, HMM for unknown words, the
    lock) is jieba's own.

    Built from the constructor's dictionary (jieba's ``dict.txt`` by default) on first use
    (~0.5 s, about what jieba needs to load its marshal cache), without writing jieba's cache
    file to the temp directory. ``initialize`` takes no other dictionary: switching would need
    jieba's bookkeeping for cache files, which this class does not use.
    """

    # Set by jieba's ``__init__`` (and by :meth:`initialize`); declared for the type checker.
    initialized: bool
    total: int
    FREQ: CompactFrequencies | dict[str, int]

    def initialize(self, dictionary: str | None = None) -> None:
        if dictionary is not None:
            raise ValueError("CompactTokenizer only uses jieba's default dictionary")
        with self.lock:
            if self.initialized:
                return
            with self.get_dict_file() as file:
                frequencies = CompactFrequencies(file)
            self.FREQ = frequencies
            self.total = frequencies.total
            self.initialized = True
