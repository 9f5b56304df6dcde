"""Documents stay in step with the code: generated parts match, and what the documents tell people to
type or open exists.

Convention: shell commands people are meant to run go in ```sh blocks of README.md and docs/*.md;
output and other text go in ```text (or unlabelled) blocks and are not run. Each command is checked as
far as possible without the platform running:

- `make <target>`: `make -n <target>` succeeds (the target exists and its recipe expands);
- `python -m <module> ...`: the module exists and `python -m <module> --help` exits 0;
- `python -c "..."`: the code compiles and every name it imports exists;
- `python <script>`, `.venv/...` tools: the file exists; other programs must be installed;
- `NAME=value` before a command: NAME is a setting of some service (or the launcher's `DATA_DIR`);
- arguments that are paths: repository paths exist; `.data/...` paths are ones the local stack
  writes (each part named in services/devstack or a service's log or ready file);
- `$(...)` inside a command is checked the same way.

Repository paths in inline code (`services/...`) and links between documents (with their #anchors)
must resolve too.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PYTHON = Path(sys.executable)

# Programs the documents may use besides make, python and files in the repository.
TOOLS = {"curl", "jq", "ss", "tail", "rm", "grep", "cat", "ls", "less"}
# Environment variables that are not service settings but are read by the launcher or by make.
OTHER_VARIABLES = {"DATA_DIR", "PYTEST_ARGS", "OTEL_EXPORTER_OTLP_ENDPOINT", "COLUMNS"}
SEPARATORS = {"|", "||", "&&", ";", "&"}
REPO_TOP = ("services", "docs", "tests", "helm", "k8s", "scripts", "bench", "proto")


@dataclass(frozen=True)
class Block:
    doc: Path
    line: int
    language: str
    text: str


def blocks(doc: Path) -> Iterator[Block]:
    """Fenced code blocks, also those indented inside list items."""
    lines = doc.read_text().splitlines()
    i = 0
    while i < len(lines):
        opening = re.match(r"^(\s*)```(\S*)\s*$", lines[i])
        if opening is None:
            i += 1
            continue
        indent, language, start = len(opening.group(1)), opening.group(2), i + 1
        i += 1
        body = []
        while i < len(lines) and not re.match(r"^\s*```\s*$", lines[i]):
            body.append(lines[i][indent:] if lines[i][:indent].isspace() else lines[i].lstrip())
            i += 1
        i += 1
        yield Block(doc, start, language, "\n".join(body))


def prose(doc: Path) -> str:
    """The document without its fenced blocks."""
    text = doc.read_text()
    return re.sub(r"^\s*```\S*\s*$.*?^\s*```\s*$", "", text, flags=re.S | re.M)


def commands(block: Block) -> list[str]:
    joined = block.text.replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]


def settings_table() -> Any:
    """scripts/gen_settings_table.py as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location(
        "gen_settings_table", ROOT / "scripts" / "gen_settings_table.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def settings_variables() -> set[str]:
    table = settings_table()
    names = set(OTHER_VARIABLES)
    for module in table.SETTINGS.values():
        names |= {name.upper() for name in importlib.import_module(module).Settings.model_fields}
    return names


def devstack_words() -> set[str]:
    """Every quoted word in the local stack's code: the names of the files and folders it writes."""
    words: set[str] = set()
    for source in (ROOT / "services" / "devstack").glob("*.py"):
        words |= set(re.findall(r"""["']([\w.\-]+)["']""", source.read_text()))
    return words


def service_names() -> set[str]:
    from services.devstack.platform import GRPC_SERVICES

    return {*GRPC_SERVICES, "dashboard", "exchangesim"}


class Checker:
    """Collects every problem of a set of documents as a sentence naming the document and line."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.variables = settings_variables()
        self.words = devstack_words()
        self.services = service_names()
        self._help_checked: dict[str, str | None] = {}

    def problem(self, where: str, text: str) -> None:
        self.problems.append(f"{where}: {text}")

    # --- commands -------------------------------------------------------------------------------

    def command(self, where: str, line: str) -> None:
        for inner in re.findall(r"\$\(([^()]*)\)", line):
            self.command(where, inner)
        line = re.sub(r"\$\([^()]*\)", "SUBSTITUTED", line)
        lexer = shlex.shlex(line, posix=True, punctuation_chars="|&;")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        try:
            tokens = list(lexer)
        except ValueError as error:
            self.problem(where, f"`{line}` does not parse as a shell command ({error})")
            return
        segment: list[str] = []
        for token in [*tokens, ";"]:
            if token in SEPARATORS:
                if segment:
                    self.simple(where, segment)
                segment = []
            else:
                segment.append(token)

    def simple(self, where: str, words: list[str]) -> None:
        while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
            name = words.pop(0).split("=", 1)[0]
            if name not in self.variables:
                self.problem(where, f"{name} is not a setting of any service")
        if not words:
            return
        program, args = words[0], words[1:]
        if program == "make":
            self.make(where, args)
        elif Path(program).name.startswith("python"):
            if "/" in program:
                self.path(where, program)
            self.python(where, args)
        elif "/" in program:
            self.path(where, program)
        elif program not in TOOLS:
            self.problem(where, f"`{program}` is not a program these documents may assume")
        elif shutil.which(program) is None:
            self.problem(where, f"`{program}` is not installed")
        for arg in args:
            if _looks_like_path(arg):
                self.path(where, arg)

    def make(self, where: str, args: list[str]) -> None:
        targets = [a for a in args if not a.startswith("-") and "=" not in a]
        result = subprocess.run(
            ["make", "-n", *targets], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
        )
        if result.returncode != 0:
            self.problem(where, f"`make {' '.join(targets)}` fails: {result.stderr.strip()[-300:]}")

    def python(self, where: str, args: list[str]) -> None:
        if not args:
            return
        if args[0] == "-m" and len(args) > 1:
            self.module(where, args[1])
        elif args[0] == "-c" and len(args) > 1:
            self.snippet(where, args[1])
        elif args[0].endswith(".py"):
            self.path(where, args[0])

    def module(self, where: str, name: str) -> None:
        if importlib.util.find_spec(name) is None:
            self.problem(where, f"python module {name} does not exist")
            return
        if name not in self._help_checked:
            result = subprocess.run(
                [str(PYTHON), "-m", name, "--help"],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
                env={k: v for k, v in os.environ.items() if not k.endswith(("_URL", "_ADDR"))},
            )
            failed = result.returncode != 0 or "usage" not in result.stdout.lower()
            self._help_checked[name] = (result.stderr or result.stdout).strip()[-300:] if failed else None
        if self._help_checked[name] is not None:
            self.problem(where, f"`python -m {name} --help` fails: {self._help_checked[name]}")

    def snippet(self, where: str, code: str) -> None:
        try:
            tree = ast.parse(code)
        except SyntaxError as error:
            self.problem(where, f"python -c code does not compile: {error}")
            return
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    self.importable(where, alias.name, [])
            elif isinstance(node, ast.ImportFrom) and node.module:
                self.importable(where, node.module, [alias.name for alias in node.names])

    def importable(self, where: str, module: str, names: list[str]) -> None:
        try:
            loaded = importlib.import_module(module)
        except ImportError:
            self.problem(where, f"python module {module} does not exist")
            return
        for name in names:
            if not hasattr(loaded, name):
                self.problem(where, f"{module} has no {name}")

    # --- paths ----------------------------------------------------------------------------------

    def path(self, where: str, raw: str) -> None:
        text = re.sub(r"<[^>/]*>", "*", raw.rstrip("/"))
        if text.startswith("/") or not text:
            return  # an absolute path chosen by the reader (e.g. DATA_DIR=/tmp/...)
        if text == ".data" or text.startswith(".data/"):
            self.runtime_path(where, raw, text.split("/")[1:])
        elif "*" in text:
            if not list(ROOT.glob(text)):
                self.problem(where, f"{raw} matches nothing in the repository")
        elif not (ROOT / text).exists():
            self.problem(where, f"{raw} does not exist in the repository")

    def runtime_path(self, where: str, raw: str, parts: list[str]) -> None:
        for part in parts:
            base = part.removesuffix(".ready.json").removesuffix(".log")
            if "*" in part or base in self.services or part in self.words or base in self.words:
                continue
            self.problem(where, f"{raw}: the local stack writes nothing called {part!r} (services/devstack)")
            return

    # --- inline paths and links -----------------------------------------------------------------

    def inline_paths(self, doc: Path) -> None:
        for span in re.findall(r"`([^`\s]+)`", prose(doc)):
            if "…" in span or "://" in span:
                continue
            top = span.split("/", 1)[0]
            if (top in REPO_TOP and "/" in span) or span.startswith(".data/"):
                self.path(shown(doc), span)

    def links(self, doc: Path) -> None:
        for target in re.findall(r"\]\(([^)\s]+)\)", prose(doc)):
            if re.match(r"^[a-z]+:", target):
                continue
            file_part, _, anchor = target.partition("#")
            resolved = (doc.parent / file_part).resolve() if file_part else doc
            where = f"{shown(doc)} link {target}"
            if not resolved.exists():
                self.problem(where, "points at nothing")
            elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
                self.problem(where, f"{resolved.name} has no heading #{anchor}")

    def check(self, docs: list[Path]) -> list[str]:
        for doc in docs:
            for block in blocks(doc):
                if block.language in ("sh", "bash", "shell"):
                    for line in commands(block):
                        self.command(f"{shown(doc)}:{block.line} `{line[:60]}`", line)
            self.inline_paths(doc)
            self.links(doc)
        return self.problems


def shown(doc: Path) -> str:
    return str(doc.relative_to(ROOT)) if doc.is_relative_to(ROOT) else doc.name


def _looks_like_path(arg: str) -> bool:
    return (
        "/" in arg
        and not arg.startswith("-")
        and "://" not in arg
        and re.fullmatch(r"[\w.*<>/\-]+", arg) is not None
    )


def anchors(doc: Path) -> set[str]:
    """GitHub's heading anchors (lower case, punctuation dropped, spaces to hyphens, repeats numbered)
    and explicit `<a id=...>` anchors."""
    seen: dict[str, int] = {}
    found = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*$", prose(doc), flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.replace("`", "").lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found | set(re.findall(r"""<a (?:id|name)=["']([^"']+)["']""", doc.read_text()))


# --- the documents ------------------------------------------------------------------------------


def test_readme_settings_table_matches_the_settings_classes() -> None:
    module = settings_table()
    readme = (ROOT / "README.md").read_text()
    expected = module.replace_in(readme, module.render())
    assert readme == expected, (
        "README settings table is stale: run `python scripts/gen_settings_table.py --write`"
    )


def test_readme_gives_the_two_commands_and_ci_runs_the_test_one() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci


def test_the_guides_exist_and_the_readme_links_them() -> None:
    readme = (ROOT / "README.md").read_text()
    for guide in ("architecture", "onboarding", "troubleshooting", "api"):
        assert (ROOT / "docs" / f"{guide}.md").exists(), f"docs/{guide}.md is missing"
        assert f"(docs/{guide}.md)" in readme, f"README does not link docs/{guide}.md"


def test_every_command_path_and_link_in_the_documents_works() -> None:
    assert any(block.language == "sh" for doc in DOCS for block in blocks(doc)), "no ```sh blocks found"
    problems = Checker().check(DOCS)
    assert not problems, "documents name things that do not work:\n" + "\n".join(problems)


# --- the checker itself catches what it is for --------------------------------------------------

BROKEN = """# Broken

```sh
make run
make no-such-target
.venv/bin/python -m services.no_such_module --help
.venv/bin/python scripts/no_such_script.py
.venv/bin/python -c "from services.devstack.platform import no_such_function"
NO_SUCH_SETTING=1 make run
tail -n 5 .data/no-such-folder/x.log
tail -n 5 services/no_such_file.py
frobnicate --now
```

See `services/no_such_service/server.py`, [a guide](no-such-guide.md) and [a part](#no-such-heading).

## Present
"""


def test_the_checker_names_each_missing_target_module_file_setting_and_link(tmp_path: Path) -> None:
    doc = tmp_path / "broken.md"
    doc.write_text(BROKEN)
    problems = "\n".join(Checker().check([doc]))
    for expected in (
        "`make no-such-target` fails",
        "python module services.no_such_module does not exist",
        "scripts/no_such_script.py does not exist",
        "services.devstack.platform has no no_such_function",
        "NO_SUCH_SETTING is not a setting of any service",
        "the local stack writes nothing called 'no-such-folder'",
        "services/no_such_file.py does not exist",
        "`frobnicate` is not a program",
        "services/no_such_service/server.py does not exist",
        "link no-such-guide.md: points at nothing",
        "has no heading #no-such-heading",
    ):
        assert expected in problems, f"not reported: {expected}\n{problems}"
    assert "`make run` fails" not in problems  # a target that exists passes
