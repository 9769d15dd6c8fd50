"""The Markdown files name only what exists.

- Every relative link resolves to a file of the repository, and a link to
  `#a-heading` of a Markdown file finds that heading (GitHub's slug of it).
- Every `make TARGET` they name, in backticks or in a shell block, is a
  target of the Makefile, interop/interop.mk or bench/bench.mk.
- Every repository path they name in backticks (`bench/callgrind.sh`,
  `grpc-core/build.py`, `src/*.rs`) exists. A repository path is one that
  starts at the root: its first part is a top-level file or folder of the
  repository (so `wrap/grpcwrap.cc`, a path inside another folder, and
  `@grpc/grpc-js` are not checked). Absolute paths, `~`, URLs, and what git
  ignores (target/, .venv/, node_modules, generated stubs) are not the
  repository's.

The files are every Markdown file git tracks, and those it would track once
added (README.md, GUIDE.md, BENCHMARKS.md, docs/*.md, ...). Each failure
names the file, the line and what is missing. Standard library only.
"""

import re
import subprocess
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Set

from harness.paths import REPO

MAKEFILES = ("Makefile", "interop/interop.mk", "bench/bench.mk")
# Top-level entries that are not part of the repository.
NOT_REPOSITORY = {".git", "target", ".venv", "node_modules"}
# Fenced blocks whose text is commands or file listings (not Rust, Python,
# YAML...): their `make` calls and paths are checked like code spans.
SHELL_FENCES = {"", "sh", "shell", "bash", "console", "text"}

FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})\s*([^\s`]*)")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.DOTALL)
INLINE_LINK = re.compile(r"\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.MULTILINE)
MAKE_CALL = re.compile(
    r"(?<![\w./-])make[ \t]+((?:[A-Za-z_]\w*=(?:\"[^\"]*\"|'[^']*'|\S*)[ \t]+)*)([A-Za-z0-9][\w.-]*)"
)
RULE = re.compile(r"^([^\s#:=$][^:=$]*?)\s*::?(?!=)")
URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


@dataclass
class Text:
    """A stretch of a Markdown file: a paragraph (consecutive lines that are
    not blank, not a heading, not fenced) or a fenced block."""

    first_line: int  # 1-based
    text: str
    fence: str = None  # the block's language ("" for none); None for prose

    def line_of(self, offset: int) -> int:
        return self.first_line + self.text.count("\n", 0, offset)


def markdown_files() -> List[Path]:
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", "--", "*.md"],
            cwd=REPO, capture_output=True, text=True, check=True,
        ).stdout.split("\0")
    except (OSError, subprocess.CalledProcessError):  # not a git checkout
        listed = ["README.md", "GUIDE.md", "BENCHMARKS.md"] + [
            f"docs/{path.name}" for path in (REPO / "docs").glob("*.md")
        ]
    return sorted({REPO / name for name in listed if name and (REPO / name).is_file()})


def parse(path: Path):
    """The file's paragraphs and fenced blocks, and its headings' slugs."""
    texts: List[Text] = []
    slugs: List[str] = []
    paragraph: List[str] = []
    paragraph_start = 0
    fence = None  # (marker, language, first line, lines) while inside one

    def end_paragraph():
        if paragraph:
            texts.append(Text(paragraph_start, "\n".join(paragraph)))
            paragraph.clear()

    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if fence:
            marker, language, start, lines = fence
            if line.strip().startswith(marker[0] * len(marker)) and not line.strip().strip(marker[0]):
                texts.append(Text(start, "\n".join(lines), fence=language))
                fence = None
            else:
                lines.append(line)
            continue
        opening = FENCE.match(line)
        if opening:
            end_paragraph()
            fence = (opening.group(1), opening.group(2).lower(), number + 1, [])
            continue
        heading = HEADING.match(line)
        if heading:
            end_paragraph()
            slugs.append(slug(heading.group(2)))
            texts.append(Text(number, heading.group(2)))
            continue
        if not line.strip():
            end_paragraph()
            continue
        if not paragraph:
            paragraph_start = number
        paragraph.append(line)
    end_paragraph()
    return texts, unique(slugs)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: the text as shown (a link by its
    text), lower case, punctuation dropped, each space a hyphen."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def unique(slugs: List[str]) -> Set[str]:
    """A heading repeated in one file gets -1, -2, ... after its slug."""
    seen: Dict[str, int] = {}
    anchors = set()
    for name in slugs:
        count = seen.get(name, 0)
        anchors.add(name if count == 0 else f"{name}-{count}")
        seen[name] = count + 1
    return anchors


def code_spans(text: Text) -> Iterator[tuple]:
    """(line, code) for each `code span` of a paragraph."""
    for match in CODE_SPAN.finditer(text.text):
        yield text.line_of(match.start()), match.group(2).replace("\n", " ")


def commands(texts: List[Text]) -> Iterator[tuple]:
    """(line, text) of everything that is code: code spans, and the lines
    of shell and plain fenced blocks."""
    for text in texts:
        if text.fence is None:
            yield from code_spans(text)
        elif text.fence in SHELL_FENCES:
            for offset, line in enumerate(text.text.split("\n")):
                yield text.first_line + offset, line


def relative(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


DOCUMENTS = markdown_files()
PARSED = {path: parse(path) for path in DOCUMENTS}


def test_the_documents_are_found():
    names = {relative(path) for path in DOCUMENTS}
    assert {"README.md", "GUIDE.md", "BENCHMARKS.md"} <= names, names


def test_every_relative_link_resolves():
    failures = []
    for path in DOCUMENTS:
        texts, _ = PARSED[path]
        for text in texts:
            if text.fence is not None:
                continue
            prose = CODE_SPAN.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text.text)
            links = [(m.start(), m.group(1)) for m in INLINE_LINK.finditer(prose)]
            links += [(m.start(), m.group(1)) for m in REFERENCE_LINK.finditer(prose)]
            for offset, link in links:
                problem = broken(path, link)
                if problem:
                    failures.append(f"{relative(path)}:{text.line_of(offset)}: link {link}: {problem}")
    assert not failures, "broken links:\n" + "\n".join(failures)


def broken(source: Path, link: str) -> str:
    """Why `link`, in `source`, leads nowhere, or "" if it resolves."""
    if URL_SCHEME.match(link) or link.startswith("//"):
        return ""
    target, _, fragment = link.partition("#")
    target = urllib.parse.unquote(target)
    if not target:
        resolved = source
    elif target.startswith("/"):
        resolved = (REPO / target.lstrip("/")).resolve()
    else:
        resolved = (source.parent / target).resolve()
    if resolved != REPO and REPO not in resolved.parents:
        return "outside the repository"
    if not resolved.exists():
        return f"no file {relative(resolved)}"
    if fragment and resolved.suffix == ".md":
        if resolved not in PARSED:
            PARSED[resolved] = parse(resolved)
        if urllib.parse.unquote(fragment) not in PARSED[resolved][1]:
            return f"no heading #{fragment} in {relative(resolved)}"
    return ""


def make_targets() -> Set[str]:
    targets = set()
    for makefile in MAKEFILES:
        for line in (REPO / makefile).read_text().splitlines():
            rule = RULE.match(line)
            if rule:
                targets.update(rule.group(1).split())
    return targets


def test_every_make_target_named_exists():
    targets = make_targets()
    failures = []
    for path in DOCUMENTS:
        texts, _ = PARSED[path]
        for line, code in commands(texts):
            for call in MAKE_CALL.finditer(code):
                target = call.group(2).rstrip(".")
                if target not in targets:
                    failures.append(
                        f"{relative(path)}:{line}: make {target}: no such target in " + ", ".join(MAKEFILES)
                    )
    assert not failures, "missing make targets:\n" + "\n".join(failures)


TOP_LEVEL = {entry.name for entry in REPO.iterdir()} - NOT_REPOSITORY


def repository_paths(code: str) -> Iterator[str]:
    """The tokens of `code` that are paths from the repository's root."""
    for token in code.split():
        token = token.strip("'\"()[],;")
        if "=" in token:  # VARIABLE=value, --flag=value, name=command
            token = token.rsplit("=", 1)[1].strip("'\"")
        token = token.rstrip(".:")
        if "/" not in token or ":" in token or any(c in token for c in "~$<>{}\\"):
            continue
        if token.split("/", 1)[0] in TOP_LEVEL:
            yield token


def ignored_by_git(paths: Set[str]) -> Set[str]:
    if not paths:
        return set()
    try:
        listed = subprocess.run(
            ["git", "check-ignore", "--stdin"], cwd=REPO, input="\n".join(sorted(paths)) + "\n",
            capture_output=True, text=True,
        ).stdout
    except OSError:
        return set()
    return {line.rstrip("/") for line in listed.splitlines()}


def exists(token: str) -> bool:
    if any(c in token for c in "*?["):
        return any(REPO.glob(token))
    return (REPO / token).exists()


def test_every_repository_path_named_exists():
    named = []
    for path in DOCUMENTS:
        texts, _ = PARSED[path]
        for line, code in commands(texts):
            for token in repository_paths(code):
                named.append((path, line, token))
    ignored = ignored_by_git({token for _, _, token in named})
    failures = [
        f"{relative(path)}:{line}: {token}: no such file or folder in the repository"
        for path, line, token in named
        if token.rstrip("/") not in ignored and not exists(token)
    ]
    assert not failures, "missing paths:\n" + "\n".join(failures)
