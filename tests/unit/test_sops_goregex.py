"""Go regular expressions in Python (tidal.sops.goregex), against Go's own regexp package.

SOPS decides with Go's `regexp.Match` which keys and comments its *_regex settings select;
every pattern below is run through Go (when a toolchain is installed) on every text, and the
verdict (match, no match, or refused by Go) must be the same here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.go_oracle import needs_go, run_go
from tidal.sops import goregex
from tidal.sops.model import Document, Item, Metadata
from tidal.sops.tree import decrypt_document

PATTERNS = [
    # SOPS-style settings
    r"_unencrypted$",
    r"^(data|stringData)$",
    r"^data$|^stringData$",
    r"(?i)PASS",
    r".*_enc$",
    r"^sops:",
    r"^\s*#",
    # anchors, classes and escapes that differ between the engines
    r"^a$",
    r"a$",
    r"(?m)a$",
    r"(?m)^b",
    r"\d+",
    r"\w",
    r"\s",
    r"\bfoo\b",
    r"\Bo",
    r"\Aa",
    r"\z",
    r"a\z",
    r"[[:alpha:]]+",
    r"[[:^alpha:]]",
    r"[[:word:]]+$",
    r"[[:foo:]]",
    r"[[:alpha]",
    r"\pL",
    r"\p{Lu}",
    r"\PL",
    r"\p{^Lu}",
    r"[\p{Lu}\d]",
    r"\p{Any}",
    r"\p{}",
    r"\x41",
    r"\x{41}",
    r"\x{110000}",
    r"\x4",
    r"\12",
    r"\0",
    r"\8",
    r"\_",
    r"\é",
    r"\q",
    r"\C",
    r"\v",
    r"[\v]",
    r"\f\t",
    r"\$",
    r"\Qa.b\E",
    r"\Qa.b",
    r"[]a]",
    r"[^]a]",
    r"[a-]",
    r"[-a]",
    r"[a-\d]",
    r"[\d-z]",
    r"[z-a]",
    r"[\]]",
    r"[\b]",
    r"[^\n]",
    r"[^a]",
    # repetition
    r"a{,2}",
    r"a{2}",
    r"a{2,}",
    r"a{2,3}",
    r"a{01}",
    r"a{1001}",
    r"(a{500}){3}",
    r"(a{500}){2}",
    r"((a{10}){10}){10}",
    r"((a{10}){10}){11}",
    r"(a{1000}){0}",
    r"(a{1000}){0,}",
    r"a**",
    r"a*?",
    r"a*?*",
    r"a++",
    r"a?+",
    r"*a",
    r"(*a)",
    r"a|*",
    r"a{2}{3}",
    r"a(?i)*",
    r"x{",
    r"x{a}",
    r"x{1",
    r"x{1,",
    r"x{1,2",
    r"{",
    r"{1}",
    r"a{1}?",
    r"^*",
    r"$*",
    r"\b*",
    r"(?:)*",
    # groups and flags
    r"(?=a)",
    r"(?!a)",
    r"(?<=a)b",
    r"(?<!a)b",
    r"(a)\1",
    r"(?P<n>a)",
    r"(?<n>a)",
    r"(?P<n>a)(?P<n>b)",
    r"(?P<>a)",
    r"(?P<n-x>a)",
    r"(?P=n)",
    r"(?#c)",
    r"(?i)A",
    r"a(?i)b|C",
    r"(?i:a)B",
    r"(?i-i:a)",
    r"(?-)",
    r"(?i-)",
    r"(?)",
    r"(?U)a+",
    r"(?U)a+?",
    r"(?x)a b",
    r"(?s).",
    r".",
    r"(?i)[^k]",
    r"(?i)k",
    r"(?i)[k]",
    r"()",
    r"(|a)",
    r"[",
    r"]",
    r"a)",
    r"(a",
    r"",
]
TEXTS = [
    "",
    "a",
    "A",
    "a\n",
    "b\na\nb",
    "foo bar",
    "x1y",
    "é",
    "Ab",
    "aB",
    "ab",
    "k",
    "K",
    "\u212a",
    "aaa",
    "a.b",
    "data",
    "stringData",
    "key_unencrypted",
    "PASSWORD",
    "a\nb",
    "\n",
    "x{",
    "{1}",
    "]",
    "-",
    "_",
    "\v",
    "\u0130",
    "\u017f",
    "\\",
    "١٢٣",
    " # comment",
    "sops:enc",
]

GO_ORACLE = """
package main

import (
	"encoding/json"
	"os"
	"regexp"
)

func main() {
	var in struct{ Patterns, Texts []string }
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		panic(err)
	}
	out := map[string][]string{}
	for _, p := range in.Patterns {
		var verdicts []string
		_, err := regexp.Compile(p)
		for _, t := range in.Texts {
			m, _ := regexp.MatchString(p, t)
			switch {
			case err != nil:
				verdicts = append(verdicts, "refused")
			case m:
				verdicts = append(verdicts, "match")
			default:
				verdicts = append(verdicts, "no match")
			}
		}
		out[p] = verdicts
	}
	json.NewEncoder(os.Stdout).Encode(out)
}
"""


def verdict(pattern: str, text: str) -> str:
    if goregex.search(pattern, text):
        return "match"
    try:
        goregex.check(pattern)
    except goregex.InvalidGoRegexError:
        return "refused"
    return "no match"


@pytest.mark.slow
@needs_go
def test_verdicts_equal_go(tmp_path: Path) -> None:
    payload = json.dumps({"Patterns": PATTERNS, "Texts": TEXTS}).encode()
    expected = json.loads(run_go(GO_ORACLE, tmp_path, stdin=payload))
    differences = [
        (pattern, text, expected[pattern][i], verdict(pattern, text))
        for pattern in PATTERNS
        for i, text in enumerate(TEXTS)
        if expected[pattern][i] != verdict(pattern, text)
    ]
    assert differences == []


@pytest.mark.parametrize(
    ("pattern", "text", "matches"),
    [
        ("^key$", "key\n", False),  # Go's $ is the end of the text
        (r"^\d+$", "١٢٣", False),  # Go's \d is ASCII
        ("a(?i)b|C", "c", True),  # a mid-pattern flag holds for the rest of the group
        ("a{,2}", "a{,2}", True),  # {,n} is a literal in Go
        ("(?=x)x", "x", False),  # Go refuses look-arounds: SOPS's match then fails
        (r"\Qa.b\E", "axb", False),
        ("(?U)a+", "aaa", True),
    ],
)
def test_known_differences_from_python(pattern: str, text: str, matches: bool) -> None:
    assert goregex.search(pattern, text) is matches


def test_unicode_scripts_and_refused_patterns() -> None:
    assert goregex.search(r"^\p{Greek}+$", "\u03b1\u03b2")
    assert not goregex.search(r"^\p{Greek}+$", "ab")
    assert not goregex.search(r"\C", "x")  # RE2 has "any byte", Go refuses it
    doc = Document(
        [[Item("key", "value")]],
        Metadata("2026-01-01T00:00:00Z", "", encrypted_regex=r"(?=k)"),
    )
    # Go refuses the pattern, so SOPS selects nothing and the value stays as it is.
    decrypt_document(doc, b"k" * 32)
    assert doc.branches[0][0].value == "value"
