"""Hostile profiles (issue 14): files that once crashed or hung the profile loader.

Each ``HostileProfile`` writes its file(s) into a folder and returns the profile to
load; loading it must raise ``ConfigError`` whose message holds every ``expected``
fragment (the file it names first). ``tests/test_config.py`` sends each one through
``load_config`` and ``cli.py config check``; ``tests/test_bad_input.py`` through the app.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from testkit.profiles import REPO_ROOT

BASE = REPO_ROOT / "config.yaml"
NESTING = 20_000  # the attack probe's depth; Python's recursion limit is 1,000


@dataclass(frozen=True)
class HostileProfile:
    id: str
    write: Callable[[Path], Path]
    expected: tuple[str, ...]


def _file(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def _child(folder: Path, body: str, name: str = "hostile.yaml") -> Path:
    return _file(folder, name, f"extends: {BASE}\n{body}")


def deep_brackets(folder: Path) -> Path:
    return _child(folder, "app: " + "[" * NESTING + "]" * NESTING + "\n")


def deep_braces(folder: Path) -> Path:
    return _child(folder, "app: " + "{a: " * NESTING + "b" + "}" * NESTING + "\n")


def billion_laughs(folder: Path) -> Path:
    """Nine levels of nine aliases each: 9**9 strings once expanded, 700 bytes on disk."""
    lines = ['  l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, 10):
        aliases = ", ".join([f"*l{level - 1}"] * 9)
        lines.append(f"  l{level}: &l{level} [{aliases}]")
    return _child(folder, "app:\n  title: x\nlaughs:\n" + "\n".join(lines) + "\n")


def merge_key_bomb(folder: Path) -> Path:
    """``<<`` merge keys copy the merged pairs: ten copies per level, eight levels."""
    lines = ["  m0: &m0 {" + ", ".join(f"k{i}: {i}" for i in range(10)) + "}"]
    for level in range(1, 9):
        lines.append(f"  m{level}: &m{level} {{<<: [{', '.join([f'*m{level - 1}'] * 10)}]}}")
    return _child(folder, "bomb:\n" + "\n".join(lines) + "\n")


def keywords_bomb(folder: Path) -> Path:
    """Valid for the schema: 2,000 fields sharing one 2,000-keyword list (4 million)."""
    keywords = ", ".join(f"k{i}" for i in range(2000))
    fields = "".join(f"      f{i}: {{kind: amount, keywords: *keywords}}\n" for i in range(1, 2000))
    body = (
        "templates:\n  bomb:\n    fields:\n"
        f"      f0: {{kind: amount, keywords: &keywords [{keywords}]}}\n{fields}"
    )
    return _child(folder, body)


def self_referential_anchor(folder: Path) -> Path:
    return _child(folder, "app: &app\n  title: x\n  upload: *app\n")


def self_referential_list(folder: Path) -> Path:
    return _child(folder, "models: &loop [*loop]\n")


def cycles_across_an_extends_pair(folder: Path) -> Path:
    """Both files hold a cycle under ``app``: the merge recursed into both, forever."""
    _file(folder, "base.yaml", f"extends: {BASE}\napp: &base\n  upload: *base\n")
    return _file(folder, "hostile.yaml", "extends: base.yaml\napp: &child\n  upload: *child\n")


def cycle_in_the_extended_file(folder: Path) -> Path:
    _file(folder, "base.yaml", f"extends: {BASE}\napp: &base\n  upload: *base\n")
    return _file(folder, "hostile.yaml", "extends: base.yaml\napp:\n  title: fine\n")


def alias_into_the_extended_file(folder: Path) -> Path:
    """Anchors do not cross files: the child cannot name the base file's anchor."""
    _file(folder, "base.yaml", f"extends: {BASE}\napp:\n  upload: &limits {{max_pages: 5}}\n")
    return _file(folder, "hostile.yaml", "extends: base.yaml\nocr: *limits\n")


def aliases_nest_deep(folder: Path) -> Path:
    """Each anchor is 40 levels deep and holds the previous one: 400 levels expanded."""
    lines = ["  d0: &d0 " + "[" * 40 + "]" * 40]
    for level in range(1, 10):
        lines.append(f"  d{level}: &d{level} " + "[" * 39 + f"*d{level - 1}" + "]" * 39)
    return _child(folder, "deep:\n" + "\n".join(lines) + "\n")


def oversized(folder: Path) -> Path:
    """Just over the limit, every line plain YAML."""
    return _child(folder, "# padding\n" * 30_000)


def fifty_megabytes(folder: Path) -> Path:
    """The attack probe's size; sparse, so it costs no disk."""
    path = _child(folder, "app:\n  title: x\n")
    with path.open("r+b") as handle:
        handle.truncate(50 * 1024 * 1024)
    return path


def huge_integer(folder: Path) -> Path:
    return _child(folder, "runtime:\n  max_loaded_models: " + "9" * 5000 + "\n")


def sexagesimal_integer(folder: Path) -> Path:
    """YAML 1.1 base-60 ints (1:2:3): converting 200,000 digits is quadratic."""
    return _child(folder, "runtime:\n  max_loaded_models: 1" + ":1" * 100_000 + "\n")


def python_object_tag(folder: Path) -> Path:
    return _child(folder, "app: !!python/object/apply:os.system ['true']\n")


def long_extends_chain(folder: Path) -> Path:
    parent = BASE
    for index in range(6):
        parent = _file(folder, f"link{index}.yaml", f"extends: {parent}\n")
    return _file(folder, "hostile.yaml", f"extends: {parent}\n")


def extends_a_directory(folder: Path) -> Path:
    (folder / "profiles").mkdir()
    return _file(folder, "hostile.yaml", "extends: profiles\n")


def extends_dev_zero(folder: Path) -> Path:
    return _file(folder, "hostile.yaml", "extends: /dev/zero\n")


def extends_a_symlink_loop(folder: Path) -> Path:
    (folder / "loop.yaml").symlink_to("loop.yaml")
    return _file(folder, "hostile.yaml", "extends: loop.yaml\n")


def extends_a_nul_byte(folder: Path) -> Path:
    return _file(folder, "hostile.yaml", 'extends: "config\\0.yaml"\n')


def a_fifo(folder: Path) -> Path:
    """Opening a FIFO nobody writes to blocks forever."""
    path = folder / "hostile.yaml"
    os.mkfifo(path)
    return path


def not_utf8(folder: Path) -> Path:
    path = folder / "hostile.yaml"
    path.write_bytes(f"extends: {BASE}\napp:\n  title: caf\xe9\n".encode("latin-1"))
    return path


def twenty_thousand_errors(folder: Path) -> Path:
    return _child(
        folder,
        "templates:\n  t:\n    fields:\n      f:\n        kind: amount\n"
        "        keywords: [" + "[], " * 20_000 + "]\n",
    )


LIMIT_HINT = "a profile is a few KB of plain YAML"
CASES = [
    HostileProfile("deep_brackets", deep_brackets, ("hostile.yaml", "nested deeper than 64")),
    HostileProfile("deep_braces", deep_braces, ("hostile.yaml", "nested deeper than 64")),
    HostileProfile("billion_laughs", billion_laughs, ("hostile.yaml", "aliases expand it")),
    HostileProfile("merge_key_bomb", merge_key_bomb, ("hostile.yaml", "aliases expand it")),
    HostileProfile("keywords_bomb", keywords_bomb, ("hostile.yaml", "aliases expand it")),
    HostileProfile(
        "self_referential_anchor",
        self_referential_anchor,
        ("hostile.yaml", "alias *app is inside the node it refers to", "line 4"),
    ),
    HostileProfile("self_referential_list", self_referential_list, ("hostile.yaml", "cycle")),
    HostileProfile(
        "cycles_across_an_extends_pair", cycles_across_an_extends_pair, ("hostile.yaml", "cycle")
    ),
    HostileProfile(
        "cycle_in_the_extended_file", cycle_in_the_extended_file, ("base.yaml", "*base", "cycle")
    ),
    HostileProfile(
        "alias_into_the_extended_file",
        alias_into_the_extended_file,
        ("hostile.yaml", "found undefined alias 'limits'"),
    ),
    HostileProfile(
        "aliases_nest_deep", aliases_nest_deep, ("hostile.yaml", "aliases nest it deeper than 64")
    ),
    HostileProfile(
        "oversized", oversized, ("hostile.yaml", "larger than the size limit of 256 KiB")
    ),
    HostileProfile(
        "fifty_megabytes", fifty_megabytes, ("hostile.yaml", "larger than the size limit")
    ),
    HostileProfile(
        "huge_integer", huge_integer, ("hostile.yaml", "a number 5,000 characters long")
    ),
    HostileProfile(
        "sexagesimal_integer", sexagesimal_integer, ("hostile.yaml", "a number 200,001 characters")
    ),
    HostileProfile(
        "python_object_tag",
        python_object_tag,
        ("hostile.yaml", "could not determine a constructor", "python/object/apply:os.system"),
    ),
    HostileProfile(
        "long_extends_chain", long_extends_chain, ("hostile.yaml", "chain longer than 4 files")
    ),
    HostileProfile(
        "extends_a_directory", extends_a_directory, ("hostile.yaml", "'profiles' is not a file")
    ),
    HostileProfile(
        "extends_dev_zero", extends_dev_zero, ("hostile.yaml", "'/dev/zero' is not a file")
    ),
    HostileProfile(
        "extends_a_symlink_loop",
        extends_a_symlink_loop,
        ("hostile.yaml", "'loop.yaml' cannot be used", "loop"),
    ),
    HostileProfile(
        "extends_a_nul_byte",
        extends_a_nul_byte,
        ("hostile.yaml", "'config\\x00.yaml' cannot be used", "null byte"),
    ),
    HostileProfile("a_fifo", a_fifo, ("hostile.yaml", "is not a regular file")),
    HostileProfile("not_utf8", not_utf8, ("hostile.yaml", "cannot read the profile", "utf-8")),
    HostileProfile(
        "twenty_thousand_errors",
        twenty_thousand_errors,
        ("hostile.yaml", "keywords.19:", "... and 19,980 more problems"),
    ),
]
