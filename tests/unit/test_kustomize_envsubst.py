"""The ${var} engine of post-build substitution, against Flux's behaviour.

Expected values were read off fluxcd/pkg/envsubst v1.7.1 (the release flux v2.9.5 links) and are
checked again at the end against the real `flux envsubst` when testenv has built it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping

import pytest

from testenv import flux_cli
from tidal.kustomize.envsubst import EnvsubstError, envsubst

VARS: Mapping[str, str] = {
    "a": "abc",
    "empty": "",
    "file": "bash.string.txt",
    "path": "/path/to/file",
    "uni": "héllo wörld",
    "upper": "ABC",
    "slashy": "foo/bar/baz",
    "n": "2",
    "neg": "-1",
    "star": "a*b",
    "greek": "ᾀß",
    "emoji": "😀x",
}

EXPANSIONS = [
    # plain text and escapes
    ("no variables here", "no variables here"),
    ("$a and $ and $", "$a and $ and $"),
    ("${a}", "abc"),
    ("x${a}y${a}z", "xabcyabcz"),
    ("${undefined}", ""),
    ("$${a}", "${a}"),
    ("$$${a}", "$abc"),
    ("$$$${a}", "$${a}"),
    ("$$", "$"),
    ("$$$", "$$"),
    ("price: 5$", "price: 5$"),
    ("${a}}", "abc}"),
    ("{${a}}", "{abc}"),
    ("\\${a}", "\\abc"),
    ("${_1abc}${1abc}", ""),
    ("a\x00${a}", "a"),
    # length, in UTF-8 bytes
    ("${#a}", "3"),
    ("${#uni}", "13"),
    ("${#empty}", "0"),
    ("${#undefined}", "0"),
    # case
    ("${a^}", "Abc"),
    ("${a^^}", "ABC"),
    ("${upper,}", "aBC"),
    ("${upper,,}", "abc"),
    ("${uni^^}", "HÉLLO WÖRLD"),
    ("${greek^^}", "ᾈß"),
    ("${a,^}", "abc"),
    ("${a^,}", "abc"),
    ("${empty^}", ""),
    # substrings, on bytes
    ("${file:5}", "string.txt"),
    ("${file:5:6}", "string"),
    ("${file:-3}", "bash.string.txt"),
    ("${file:${neg}}", "t"),
    ("${file:1:-1}", "ash.string.tx"),
    ("${file:10:-10}", ""),
    ("${file:99}", ""),
    ("${file:2:99}", "sh.string.txt"),
    ("${file:x}", "bash.string.txt"),
    ("${file:1:x}", "bash.string.txt"),
    ("${file:+1}", "bash.string.txt"),
    ("${file:${n}:${n}}", "sh"),
    ("${file:1::2}", "as"),
    ("${uni:1:2}", "é"),
    ("${emoji:-1}", "😀x"),
    ("${a:0:9223372036854775807}", "abc"),
    # prefix and suffix removal, with glob patterns
    ("${file#*.}", "string.txt"),
    ("${file##*.}", "txt"),
    ("${file%.*}", "bash.string"),
    ("${file%%.*}", "bash"),
    ("${path#*/}", "path/to/file"),
    ("${path##*/}", "file"),
    ("${file#bash}", ".string.txt"),
    ("${file#nomatch}", "bash.string.txt"),
    ("${file#*}", "ash.string.txt"),
    ("${file##*}", ""),
    ("${file#b?s}", "h.string.txt"),
    ("${file#[a-c]}", "ash.string.txt"),
    ("${file#[^a-c]}", "bash.string.txt"),
    # Suffixes are removed by reversing value and pattern, brackets included: "]t[" matches
    # nothing, and "t]x[t" only the literal text.
    ("${file%[t]}", "bash.string.txt"),
    ("${file%t]x[t}", "bash.string."),
    ("${star#a\\*}", "b"),
    ("${file#[}", "bash.string.txt"),
    ("${file#${a}}", "bash.string.txt"),
    # Prefixes are tried byte by byte: "?" matches the first byte of "é" alone.
    ("${uni#h?}", "\udca9llo wörld"),
    ("${uni##h?}", "llo wörld"),
    # replacement: literal text, not globs
    ("${slashy/\\//-}", "foo-bar/baz"),
    ("${slashy//\\//-}", "foo-bar-baz"),
    ("${a/b/X}", "aXc"),
    ("${a//[a-c]/X}", "abc"),
    ("${star/*/+}", "a+b"),
    ("${a/b/}", "ac"),
    ("${a//b/}", "ac"),
    ("${a/#ab/X}", "Xc"),
    ("${a/#b/X}", "abc"),
    ("${a/%bc/X}", "aX"),
    ("${a/%ab/X}", "abc"),
    ("${a/#ab/}", "abc"),
    ("${a/%bc/}", "abc"),
    # A run of slashes is one delimiter; later slashes belong to the replacement.
    ("${a/b//c}", "acc"),
    ("${a/b/c/d}", "ac/dc"),
    ("${a/b/$$}", "a$c"),
    ("${a/b/\\\\}", "a\\c"),
    ("${a/${n}/X}", "abc"),
    ("${a/${undefined}/X}", "Xabc"),
    ("${a//${undefined}/-}", "-a-b-c-"),
    # defaults: "=", ":=" and ":-" all test for an empty value; ":?" and ":+" act the same
    ("${a=x}", "abc"),
    ("${undefined=x}", "x"),
    ("${empty=x}", "x"),
    ("${empty:=x}", "x"),
    ("${empty:-x}", "x"),
    ("${undefined:?x}", "x"),
    ("${a:?x}", "abc"),
    ("${undefined:+x}", "x"),
    ("${a:+x}", "abc"),
    ("${undefined:-}", ""),
    ("${undefined==x}", "=x"),
    ("${undefined:-a:b=c}", "a:b=c"),
    ("${undefined:-{x}}", "{x}"),
    ("${undefined:-a}b}", "ab}"),
    ("${undefined:-$$}", "$$"),
    ("${undefined:-${a}}", "abc"),
    ("${undefined:=pre${a}-${upper,,}post}", "preabc-abcpost"),
    ("${undefined:=${empty:-${a^^}}}", "ABC"),
    ("${a:=${undefined}}", "abc"),
    ("${undefined:-héllo}", "héllo"),
]


@pytest.mark.parametrize(("text", "expected"), EXPANSIONS)
def test_expansion(text: str, expected: str) -> None:
    assert envsubst(text, VARS) == expected


ERRORS = [
    ("${}", "unable to parse variable name"),
    ("${", "unable to parse variable name"),
    ("text ${ a}", "unable to parse variable name"),
    ("${a", "missing closing brace"),
    ("${a b}", "missing closing brace"),
    ("${a-x}", "missing closing brace"),
    ("${a+x}", "missing closing brace"),
    ("${a?x}", "missing closing brace"),
    ("${a:}", "unable to parse substitution within function"),
    ("${a:", "bad substitution"),
    ("${a:é}", "bad substitution"),
    ("${a::1}", "unable to parse substitution within function"),
    ("${a:1:}", "unable to parse substitution within function"),
    ("${a:1${n}}", "bad substitution"),
    ("${a:-x", "unable to parse substitution within function"),
    ("${#}", "bad substitution"),
    ("${#a:1}", "bad substitution"),
    ("${a^^^}", "bad substitution"),
    ("${a#}", "unable to parse substitution within function"),
    ("${a#x${n}}", "bad substitution"),
    ("${a/b}", "bad substitution"),
    ("${a//b}", "bad substitution"),
    ("${a/#/x}", "unable to parse substitution within function"),
    ("${a/b/x${n}}", "bad substitution"),
    ("${a:1:9223372036854775807}", "runtime error: slice bounds out of range"),
    # the whole text is parsed before anything is evaluated
    ("${undefined} ${a", "missing closing brace"),
]


@pytest.mark.parametrize(("text", "message"), ERRORS)
def test_syntax_errors(text: str, message: str) -> None:
    with pytest.raises(EnvsubstError) as info:
        envsubst(text, VARS)
    assert str(info.value) == message
    with pytest.raises(EnvsubstError):
        envsubst(text, VARS, strict=True)


@pytest.mark.parametrize(
    "text",
    [
        "${missing}",
        "${#missing}",
        "${missing^^}",
        "${missing:0}",
        "${missing#x}",
        "${missing/a/b}",
        "${a:=${missing}}",
        "${missing:=${missing^}}",
        "ok ${a} then ${missing} then ${also_missing}",
    ],
)
def test_strict_mode_refuses_undefined_variables(text: str) -> None:
    with pytest.raises(EnvsubstError, match=r'^variable not set \(strict mode\): "missing"$'):
        envsubst(text, VARS, strict=True)
    # Without strict mode the same text renders, the variable being empty.
    envsubst(text, VARS)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${missing=x}", "x"),
        ("${missing:=x}", "x"),
        ("${missing:-x}", "x"),
        ("${missing:?x}", "x"),
        ("${missing:+x}", "x"),
        ("${missing:-}", ""),
        ("${empty}", ""),
        ("${empty^^}", ""),
        ("$${missing}", "${missing}"),
        ("$missing", "$missing"),
    ],
)
def test_strict_mode_accepts_defaults_and_defined_empties(text: str, expected: str) -> None:
    assert envsubst(text, VARS, strict=True) == expected


def test_undecodable_bytes_are_single_bytes_and_become_u_fffd_where_go_rewrites_them() -> None:
    variables = {"raw": "a\udcffb", "split": "\udcc3\udca9"}
    assert envsubst("${#raw}", variables) == "3"
    assert envsubst("${raw:1:1}", variables) == "\udcff"
    assert envsubst("${raw^^}", variables) == "A\ufffdB"
    assert envsubst("${raw%b}", variables) == "a\ufffd"
    # Escaped bytes that together are valid UTF-8 are the character Go sees.
    assert envsubst("${split}", variables) == "é"
    # A substring can cut a character in half.
    assert envsubst("${uni:0:2}", VARS) == "h\udcc3"


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    text = "${a:-" * 2000 + "x" + "}" * 2000
    with pytest.raises(EnvsubstError, match="nested too deeply"):
        envsubst(text, VARS)


# ---------------------------------------------------------------------------------------------
# The real flux CLI as the oracle

ORACLE_LINES = [
    *(text for text, _ in EXPANSIONS if "\x00" not in text),
    *(text for text, _ in ERRORS),
    "${a:😀}",
    "${a:\x00}",
    "${uni,,}${uni^}${emoji^^}",
    "${greek,}${greek^}",
    "${file#*[.]*}${file%%[!a]}${file%[a-z][a-z]t}",
    "${path#/*/}${path##/*/}${path%/*}${path%%/*}",
    "${path//o/${a}}${path/#\\//x}${path/%file/}",
    "${star#*\\*}${star%\\**}${star#[*]}",
    "${file#\\}${file#[a-}${file#[]a]}${file#[\\]]}",
    "${uni#*ö}${uni%ö*}${uni##*[ö]}${uni%%[é]*}",
    "${a:-1}${a:1:-1}${file:-4:2}${file:-99:2}${file: 1}",
    "${a:=x}${a==x}${undefined=${undefined:-${a}}}",
    "${n:${n}:${n}}${#${a}}",
    "$$${a}$$$${a}$${a$$}",
    "${undefined/a/b}${undefined:1}${undefined#x}",
    "ends with a dollar $",
    "tab\tand ${a} unicode ${uni} \\\\ ${a/\\\\/x}",
]


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _run_flux(lines: list[str], strict: bool) -> list[tuple[str, str]]:
    """flux envsubst over the lines: ("ok", output) or ("error", message) per line.

    flux stops at the first failing line, so the rest is fed to it again.
    """
    env = {name.encode(): value.encode() for name, value in VARS.items()}
    results: list[tuple[str, str]] = []
    while len(results) < len(lines):
        stdin = b"".join(_encode(line) + b"\n" for line in lines[len(results) :])
        args = [str(flux_cli.flux_path()), "envsubst", *(["--strict"] if strict else [])]
        done = subprocess.run(args, input=stdin, env=env, capture_output=True, timeout=60)
        results += [("ok", _decode(out)) for out in done.stdout.split(b"\n")[:-1]]
        if done.returncode != 0:
            message = done.stderr.decode().strip()
            if message.startswith("panic: "):
                message = message.splitlines()[0].removeprefix("panic: ").split(" [")[0]
            results.append(("error", message.removeprefix("✗ ")))
        elif len(results) < len(lines):
            raise AssertionError(f"flux envsubst stopped early: {done.stderr.decode()}")
    return results


@pytest.fixture(scope="module")
def flux_results() -> dict[bool, list[tuple[str, str]]]:
    if not flux_cli.is_built():
        pytest.skip("the flux CLI is not built (python -m testenv builds it)")
    return {strict: _run_flux(ORACLE_LINES, strict) for strict in (False, True)}


def _ours(line: str, strict: bool) -> tuple[str, str]:
    try:
        return ("ok", envsubst(line, VARS, strict=strict))
    except EnvsubstError as e:
        return ("error", str(e))


@pytest.mark.parametrize("strict", [False, True], ids=["lax", "strict"])
@pytest.mark.parametrize("index", range(len(ORACLE_LINES)), ids=ORACLE_LINES.__getitem__)
def test_same_as_flux_envsubst(
    flux_results: dict[bool, list[tuple[str, str]]], index: int, strict: bool
) -> None:
    assert _ours(ORACLE_LINES[index], strict) == flux_results[strict][index]
