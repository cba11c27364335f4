"""The documentation: README.md stays an entry point, every relative link in it and in docs/ leads
somewhere, and docs/cli.md holds each subcommand's real `--help`.

`python tests/test_docs.py --write-cli` rewrites docs/cli.md's help blocks from the installed CLI.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
CLI_MD = ROOT / "docs" / "cli.md"
README_MAX_BYTES = 12 * 1024
SETUP_COMMANDS = ["make demo", "make test"]

_FENCE = re.compile(r"^(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
# [text](target) and ![alt](target); link text may hold one level of brackets.
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HELP_BLOCK = re.compile(r"(<!-- help: ?(?P<cmd>[a-z]*) -->\n)(?P<body>.*?)(<!-- /help -->)", re.S)


def _prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks."""
    out, fenced = [], False
    for line in text.splitlines():
        if _FENCE.match(line.lstrip()):
            fenced = not fenced
            continue
        if not fenced:
            out.append(line)
    return out


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = _CODE_SPAN.sub(lambda m: m.group(2), heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in _prose_lines(path.read_text(encoding="utf-8")):
        m = _HEADING.match(line)
        if not m:
            continue
        base = slug(m.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(path: Path) -> list[str]:
    """Link targets in the prose (code blocks and code spans do not link)."""
    targets = []
    for line in _prose_lines(path.read_text(encoding="utf-8")):
        line = _CODE_SPAN.sub("code", line)
        targets += [m.group(1) for m in _LINK.finditer(line)]
    return targets


def broken_links(path: Path) -> list[str]:
    """Each relative link of `path` that leads to no file, or to no heading of the file it names."""
    problems = []
    for target in links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto: ...
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            problems.append(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: "
                            f"{target!r}: no such file {dest}")
            continue
        if anchor:
            if dest.suffix != ".md" or not dest.is_file():
                problems.append(f"{path.name}: {target!r}: an anchor into a file that is not Markdown")
            elif anchor not in anchors(dest):
                problems.append(f"{path.name}: {target!r}: {dest.name} has no heading with anchor "
                                f"#{anchor} (it has {sorted(anchors(dest))})")
    return problems


def doc_files() -> list[Path]:
    return [README, *sorted((ROOT / "docs").glob("*.md"))]


def test_readme_is_an_entry_point():
    size = README.stat().st_size
    assert size <= README_MAX_BYTES, (
        f"README.md is {size} bytes, over {README_MAX_BYTES}: move detail to docs/ and link it")


def test_readme_starts_with_the_two_setup_commands():
    text = README.read_text(encoding="utf-8")
    first_block = re.search(r"^```[a-z]*\n(.*?)^```", text, re.S | re.M)
    assert first_block, "README.md has no code block"
    commands = [line.split("#", 1)[0].strip() for line in first_block.group(1).splitlines()]
    assert [c for c in commands if c] == SETUP_COMMANDS, (
        f"README.md's first code block should hold exactly the set-up commands {SETUP_COMMANDS}")
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for target in ("demo", "test"):
        assert re.search(rf"^{target}:", makefile, re.M), f"the Makefile has no `{target}` target"


@pytest.mark.parametrize("doc", doc_files(), ids=lambda p: p.name)
def test_relative_links_resolve(doc):
    assert links(doc) or doc != README, "README.md links nowhere"
    problems = broken_links(doc)
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_the_link_check_finds_broken_links(tmp_path):
    (tmp_path / "other.md").write_text("# Other page\n\n## A `code` heading\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n[ok](other.md) [ok](other.md#a-code-heading) [ok](#page) [ok](https://example.com/x)\n"
        "[gone](missing.md) [bad anchor](other.md#nope) [self](#nowhere)\n"
        "```\n[in code](not-a-link.md)\n```\n`[span](not-a-link-either.md)`\n", encoding="utf-8")
    found = broken_links(page)
    assert len(found) == 3, found
    assert "missing.md" in found[0] and "#nope" in found[1] and "#nowhere" in found[2]


def test_readme_links_each_docs_page():
    linked = {(README.parent / t.partition("#")[0]).resolve() for t in links(README)}
    missing = [p.name for p in sorted((ROOT / "docs").glob("*.md")) if p.resolve() not in linked]
    assert missing == [], f"README.md does not link {missing}"


def _help(command: str) -> str:
    args = [command] if command else []
    env = {**os.environ, "COLUMNS": "100", "NO_COLOR": "1", "PYTHON_COLORS": "0"}
    out = subprocess.run([sys.executable, "-m", "streamrec.cli", *args, "--help"], capture_output=True, text=True,
                         env=env, check=True, timeout=120).stdout
    shown = f"streamrec {command} --help" if command else "streamrec --help"
    return f"```text\n$ {shown}\n" + "\n".join(line.rstrip() for line in out.strip().splitlines()) + "\n```\n"


def _words(text: str) -> str:
    return " ".join(text.split())


def test_cli_reference_is_the_real_help():
    blocks = list(_HELP_BLOCK.finditer(CLI_MD.read_text(encoding="utf-8")))
    assert {m["cmd"] for m in blocks} >= {"", "record", "verify", "info", "repair", "probe", "bench", "merge",
                                          "transcode"}
    for m in blocks:
        # Whitespace aside: line wrapping varies with the Python version's argparse.
        assert _words(m["body"]) == _words(_help(m["cmd"])), (
            f"docs/cli.md's `streamrec {m['cmd']} --help` is out of date: run `python tests/test_docs.py --write-cli`")


def write_cli() -> None:
    text = CLI_MD.read_text(encoding="utf-8")
    CLI_MD.write_text(_HELP_BLOCK.sub(lambda m: m.group(1) + _help(m["cmd"]) + m.group(4), text), encoding="utf-8")


if __name__ == "__main__":
    if sys.argv[1:] == ["--write-cli"]:
        write_cli()
    else:
        sys.exit("usage: python tests/test_docs.py --write-cli")
