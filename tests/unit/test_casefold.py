"""The one case folding of the destinations' keys (outdials.casefold)."""

import sys
import unicodedata

import pytest

from outdial.outdials.casefold import FOLDED, LETTERS, fold


def test_ascii_letters_fold_as_lower_case_under_any_locale() -> None:
    every_ascii = "".join(map(chr, range(128)))
    assert fold(every_ascii) == every_ascii.lower()
    assert fold("INFO@EXAMPLE.COM") == "info@example.com"  # "I" is "i", never "ı"


def test_letters_that_lower_casing_keeps_apart_are_one() -> None:
    assert fold("ΟΔΥΣΣΕΑΣ") == fold("οδυσσεας") == fold("Οδυσσεασ") == "οδυσσεασ"
    assert fold("İLKER") == fold("ilker") == "ilker"
    assert fold("STRAẞE") == fold("straße") == "straße"  # one code point to one: no "ss"
    assert fold("\u212aELVIN") == "kelvin"


def test_the_mapping_is_one_code_point_to_one_and_folds_once() -> None:
    assert len(LETTERS) == len(FOLDED) == len(set(LETTERS)) == 1455
    assert fold(FOLDED) == FOLDED  # what is folded folds to itself
    assert fold(LETTERS) == FOLDED


@pytest.mark.skipif(unicodedata.unidata_version != "14.0.0",
                    reason="the mapping is frozen at Unicode 14, the version of Python 3.11")
def test_the_mapping_is_unicode_simple_case_folding() -> None:
    """As written down from Python 3.11's Unicode 14: each code point's folding when it is one
    code point, else its lower case when that is (the simple folding), "İ" to "i"."""
    expected = {}
    for code in range(sys.maxunicode + 1):
        letter = chr(code)
        folded = letter.casefold() if len(letter.casefold()) == 1 else letter.lower()
        if len(folded) == 1 and folded != letter:
            expected[letter] = folded
    expected["İ"] = "i"
    assert dict(zip(LETTERS, FOLDED, strict=True)) == expected
