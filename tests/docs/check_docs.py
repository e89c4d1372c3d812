#!/usr/bin/env python3
"""Checks that README.md and DOCS.md tell the truth about the repository.

  variables  DOCS.md's configuration table lists exactly the variables in src/config.rs's
             VARIABLES (which a unit test ties to what the loaders read), the secrets'
             `<NAME>_FILE` form is documented, and every other ALL_CAPS setting named in
             backticks exists somewhere in the code or scripts;
  commands   every command shown (code blocks and inline code): `nix run .#APP` apps from
             nix/apps.nix, `nix build .#...` packages from nix/packages.nix, repository
             paths, the binaries' subcommands and flags (from their real --help), chart
             values given with --set or named as dotted keys (chart/values.yaml);
  links      every relative link and #anchor resolves (GitHub's slug rules), no link
             leaves the repository, no machine-specific absolute path, and every
             `"Section" in DOCS.md` pointer in the code names a real heading;
  shellcheck scripts/*.sh and .ci/run (the nix suite checks nix/apps/).

Run from anywhere: `check_docs.py [--root DIR] [--bin-dir DIR] [CHECK...]`. Prints one
line per problem and exits 1 if there is any. tests/docs/selftest.py proves that every
check fails when the docs lie.
"""
from __future__ import annotations

import argparse
import functools
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

DOCS = ("README.md", "DOCS.md")

# Top-level directories whose paths the docs may name; a named path must exist.
REPO_DIRS = ("src", "scripts", "nix", "chart", "tests", "migrations", "templates",
             "static", "examples", ".ci", ".github")

# ALL_CAPS names in backticks that are neither greeter's variables nor in this
# repository's code, with the reason they may still be named.
EXTERNAL_NAMES = {
    "KIND_EXPERIMENTAL_PROVIDER": "kind's own switch to Podman",
    "POSTGRES_PASSWORD": "the postgres image's variable",
}

# Words in backticks that look like settings but are SQL, HTTP or file names.
NOT_SETTINGS = {"GET", "HEAD", "POST", "NOTIFY", "LISTEN", "UPDATE", "DELETE", "PVC",
                "TBD", "JSON", "HTTP", "TLS", "CSRF", "README"}

FILE_SUFFIXES = (".rs", ".yaml", ".yml", ".json", ".md", ".nix", ".sh", ".txt", ".toml",
                 ".sql", ".lock", ".hbs", ".css", ".py", ".tpl")


class Checker:
    def __init__(self, root: Path, bin_dir: Path | None = None, quiet: bool = False):
        self.root = root.resolve()
        self.bin_dir = (bin_dir or self.root / "target" / "debug").resolve()
        self.quiet = quiet
        self.problems: list[str] = []
        self._problems_before = 0

    # ---------------------------------------------------------------- helpers
    def problem(self, text: str) -> None:
        self.problems.append(text)
        if not self.quiet:
            print(f"FAIL  {text}")

    def ok(self, text: str) -> None:
        """The summary line of a check: `ok` only if the check added no problem."""
        failed = len(self.problems) - self._problems_before
        if not self.quiet:
            print(f"ok    {text}" if not failed else f"FAIL  {failed} problem(s); checked: {text}")

    def read(self, relative: str) -> str:
        return (self.root / relative).read_text()

    @functools.cached_property
    def docs(self) -> dict[str, str]:
        return {name: self.read(name) for name in DOCS}

    def rust_string_list(self, source: str, name: str) -> set[str]:
        match = re.search(rf"pub const {name}: &\[&str\] = &\[(.*?)\];", source, re.S)
        if not match:
            self.problem(f"src/config.rs has no {name} constant")
            return set()
        return set(re.findall(r'"([A-Z0-9_]+)"', match.group(1)))

    @functools.cached_property
    def code_variables(self) -> tuple[set[str], set[str]]:
        source = self.read("src/config.rs")
        return (self.rust_string_list(source, "VARIABLES"),
                self.rust_string_list(source, "SECRET_VARIABLES"))

    @staticmethod
    def section(text: str, title: str) -> str | None:
        """The body of the `## title` section, up to the next `## ` heading."""
        match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
        return match.group(1) if match else None

    @staticmethod
    def tables(text: str) -> list[list[list[str]]]:
        """Markdown tables as rows of cells (header and separator rows included)."""
        found, current = [], []
        for line in text.splitlines():
            if line.startswith("|"):
                current.append([c.strip() for c in line.strip().strip("|").split("|")])
            elif current:
                found.append(current)
                current = []
        if current:
            found.append(current)
        return found

    @staticmethod
    def without_code_blocks(text: str) -> str:
        return re.sub(r"^ {0,3}```.*?^ {0,3}```", "", text, flags=re.S | re.M)

    @staticmethod
    def code_blocks(text: str) -> list[tuple[str, str]]:
        """(language, body) of every fenced block; fences may be indented (list items)."""
        return re.findall(r"^ {0,3}```([\w-]*)\n(.*?)^ {0,3}```", text, re.S | re.M)

    def command_lines(self, text: str) -> list[str]:
        """Lines shown as commands: shell blocks, `$ ` lines of console blocks, and
        inline code spans in the prose. Output blocks (`text`) are not commands."""
        lines = []
        for lang, body in self.code_blocks(text):
            if lang == "console":
                lines += [l[2:] for l in body.splitlines() if l.startswith("$ ")]
            elif lang in ("", "sh", "bash", "shell"):
                lines += body.splitlines()
        lines += self.inline_code(text)
        cleaned = []
        for line in lines:
            line = re.sub(r"\s+#\s.*$", "", line).strip()  # trailing comments
            if line and not line.startswith("#"):
                cleaned.append(line)
        return cleaned

    def inline_code(self, text: str) -> list[str]:
        """Code spans in the prose; a span may continue on the next line (CommonMark)."""
        spans = re.findall(r"`([^`]+)`", self.without_code_blocks(text))
        return [re.sub(r"\s*\n\s*", " ", span) for span in spans]

    # ------------------------------------------------------------- variables
    def check_variables(self) -> None:
        code, secrets = self.code_variables
        docs = self.docs["DOCS.md"]
        body = self.section(docs, "Configuration reference")
        if body is None:
            self.problem("DOCS.md has no '## Configuration reference' section")
            return
        table = None
        for rows in self.tables(body):
            if rows and rows[0] and rows[0][0].lower() == "variable":
                table = rows
                break
        if table is None:
            self.problem("DOCS.md's configuration reference has no table whose first column is 'variable'")
            return
        listed: list[str] = []
        for row in table[2:]:
            cell = re.fullmatch(r"`([A-Z][A-Z0-9_]*)`", row[0])
            if not cell:
                self.problem(f"DOCS.md configuration table: first cell {row[0]!r} is not one `VARIABLE`")
                continue
            listed.append(cell.group(1))
            if len(row) < 4 or not all(row[1:4]):
                self.problem(f"DOCS.md configuration table: {cell.group(1)} lacks required/default/meaning")
        for name in sorted({n for n in listed if listed.count(n) > 1}):
            self.problem(f"DOCS.md configuration table lists {name} twice")
        for name in sorted(code - set(listed)):
            self.problem(f"DOCS.md configuration table lacks {name}, which the code reads")
        for name in sorted(set(listed) - code):
            self.problem(f"DOCS.md configuration table lists {name}, which the code does not read")
        for name in sorted(secrets):
            row = next((r for r in table if r and r[0] == f"`{name}`"), None)
            if row is not None and "_FILE" not in " ".join(row):
                self.problem(f"DOCS.md configuration table: {name} does not say that {name}_FILE works")
        if "<NAME>_FILE" not in docs:
            self.problem("DOCS.md does not explain the <NAME>_FILE form")
        self.check_named_settings(code, secrets)
        self.ok(f"configuration table: {len(listed)} variables == src/config.rs VARIABLES")

    @functools.cached_property
    def code_words(self) -> set[str]:
        """Every ALL_CAPS word in the repository's tracked files other than the docs."""
        words: set[str] = set()
        for path in self.tracked_files:
            if path in DOCS or path.startswith("tests/docs/"):
                continue
            try:
                text = (self.root / path).read_text(errors="replace")
            except (OSError, UnicodeDecodeError):
                continue
            words |= set(re.findall(r"\b[A-Z][A-Z0-9_]{2,}\b", text))
        return words

    def check_named_settings(self, code: set[str], secrets: set[str]) -> None:
        """A setting the docs tell you to set (`NAME` or `NAME=value` in backticks or in
        commands) must be read somewhere: by greeter, a script, the chart or the image."""
        known = code | {f"{s}_FILE" for s in secrets} | set(EXTERNAL_NAMES) | NOT_SETTINGS
        for doc, text in self.docs.items():
            names = set()
            for span in self.inline_code(text):
                names |= set(re.findall(r"^([A-Z][A-Z0-9_]{2,})(?:=|$)", span))
            for line in self.command_lines(text):
                names |= set(re.findall(r"(?:^|\s)([A-Z][A-Z0-9_]{2,})=", line))
            for name in sorted(names - known):
                if name not in self.code_words:
                    self.problem(f"{doc}: names the setting {name}, which nothing in the repository reads")

    # --------------------------------------------------------------- commands
    @functools.cached_property
    def tracked_files(self) -> list[str]:
        if (self.root / ".git").exists():
            out = subprocess.run(
                ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                cwd=self.root, capture_output=True, text=True, check=True).stdout
            return [line for line in out.splitlines() if (self.root / line).is_file()]
        return [str(p.relative_to(self.root)) for p in self.root.rglob("*")
                if p.is_file() and not {"target", ".venv", ".git"} & set(p.parts)]

    @functools.cached_property
    def nix_apps(self) -> set[str]:
        source = self.read("nix/apps.nix")
        apps = set(re.findall(r"^  ([a-z][a-z0-9-]*) = app \{", source, re.M))
        if not apps:
            self.problem("nix/apps.nix: no `NAME = app {` attributes found (parser out of date?)")
        return apps

    @functools.cached_property
    def nix_packages(self) -> set[str]:
        source = self.read("nix/packages.nix")
        names = set(re.findall(r"^\s*([a-z][\w-]*) = ", source, re.M))
        for group in re.findall(r"inherit \([^)]*\) ([^;]+);", source):
            names |= set(group.split())
        if not names:
            self.problem("nix/packages.nix: no package names found (parser out of date?)")
        return names

    @functools.cached_property
    def flake_systems(self) -> set[str]:
        match = re.search(r"systems = \[(.*?)\];", self.read("flake.nix"), re.S)
        return set(re.findall(r'"([\w-]+)"', match.group(1))) if match else set()

    @functools.lru_cache(maxsize=None)
    def help_text(self, binary: str, *args: str) -> str:
        path = self.bin_dir / binary
        if not path.exists():
            subprocess.run(["cargo", "build", "--quiet", "--bins"], cwd=self.root, check=True)
        result = subprocess.run([str(path), *args, "--help"], capture_output=True, text=True)
        if result.returncode != 0:
            self.problem(f"{binary} {' '.join(args)} --help failed: {result.stderr.strip()}")
        return result.stdout

    @functools.cached_property
    def cli(self) -> dict[str, set[str]]:
        top = self.help_text("greeter")
        commands = re.search(r"^Commands:\n(.*?)(?:\n\n|\Z)", top, re.S | re.M)
        subcommands = set(re.findall(r"^  ([a-z]+)\s", commands.group(1), re.M)) if commands else set()
        if not subcommands:
            self.problem("greeter --help lists no subcommands (parser out of date?)")
        flags = lambda text: set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", text))
        return {
            "subcommands": subcommands,
            "greeter": flags(top),
            **{sub: flags(self.help_text("greeter", sub)) for sub in subcommands if sub != "help"},
            "greeter-migrate": flags(self.help_text("greeter-migrate")),
        }

    @functools.cached_property
    def values(self) -> dict:
        return yaml.safe_load(self.read("chart/values.yaml")) or {}

    def value_exists(self, dotted: str) -> bool:
        node = self.values
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        return True

    def check_binary(self, doc: str, segment: str) -> int:
        """`greeter ...` or `greeter-migrate ...` as a command (after VAR=value)."""
        invocation = re.sub(r"^(?:[A-Z_][A-Z0-9_]*=\S*\s+)*", "", segment)
        command = re.fullmatch(r"(?:[\w./-]*/)?(greeter|greeter-migrate)(?:\s+(.*))?", invocation)
        if not command:
            return 0
        binary, rest = command.group(1), command.group(2) or ""
        words = rest.split()
        known = self.cli[binary]
        if binary == "greeter" and words and re.fullmatch(r"[a-z][\w-]*", words[0]):
            sub = words[0]
            if sub not in self.cli["subcommands"]:
                self.problem(f"{doc}: `greeter {sub}`: greeter has no such subcommand")
                return 1
            known = self.cli.get(sub, set()) | {"--help"}
            rest = " ".join(words[1:])
        for flag in re.findall(r"(?<![\w-])--[a-z][a-z-]*", rest):
            if flag not in known:
                self.problem(f"{doc}: `{segment}`: {flag} is not an option of {binary}"
                             + (f" {words[0]}" if known is not self.cli[binary] else ""))
        return 1

    def check_paths(self, doc: str, line: str) -> int:
        checked = 0
        pattern = rf"(?:^|[\s(=\"'])((?:\./)?(?:{'|'.join(map(re.escape, REPO_DIRS))})/[\w./*<>-]*)"
        for path in re.findall(pattern, line):
            path = path.removeprefix("./").rstrip(".")
            if "<" in path or "$" in path:
                continue
            checked += 1
            exists = any(self.root.glob(path)) if "*" in path else (self.root / path).exists()
            if not exists:
                self.problem(f"{doc}: {path} does not exist")
        return checked

    def check_commands(self) -> None:
        checked = 0
        for doc, text in self.docs.items():
            for line in self.command_lines(text):
                for app in re.findall(r"nix run (?:\S+ )*?\.#([\w-]+)", line):
                    checked += 1
                    if app not in self.nix_apps | {"default"}:
                        self.problem(f"{doc}: `nix run .#{app}`: nix/apps.nix defines no app {app}")
                for attr in re.findall(r"nix (?:build|eval)\b[^\n]*?\.#([\w.-]+)", line):
                    checked += 1
                    parts = attr.split(".")
                    if parts[0] == "packages" and len(parts) >= 3:
                        if parts[1] not in self.flake_systems:
                            self.problem(f"{doc}: `.#{attr}`: {parts[1]} is not a system of flake.nix")
                        name = parts[2]
                    else:
                        name = parts[0]
                    if name not in self.nix_packages:
                        self.problem(f"{doc}: `.#{attr}`: nix/packages.nix has no package {name}")
                checked += self.check_paths(doc, line)
                for segment in re.split(r"\s(?:\|\||&&|\||;|--)\s", line):
                    checked += self.check_binary(doc, segment.strip())
                for key in re.findall(r"--set(?:-string|-file)?[ =]([\w.]+)=", line):
                    checked += 1
                    if not self.value_exists(key):
                        self.problem(f"{doc}: `--set {key}=`: chart/values.yaml has no key {key}")
            checked += self.check_value_names(doc, text)
        self.ok(f"commands: {checked} apps, packages, paths, binaries, flags and chart values exist")

    def check_value_names(self, doc: str, text: str) -> int:
        """Dotted chart value names (`image.tag`, `networkPolicy.*`) in inline code, and
        every name in the first column of a table headed 'value'."""
        checked = 0
        tops = set(self.values)
        names = []
        for span in self.inline_code(text):
            for token in re.split(r"[\s,/]+", span):
                token = token.split("=", 1)[0]
                if re.fullmatch(r"[a-z][A-Za-z0-9]*(?:\.[A-Za-z][A-Za-z0-9]*)+(?:\.\*)?", token) \
                        and token.split(".")[0] in tops and not token.endswith(FILE_SUFFIXES):
                    names.append(token)
        for rows in self.tables(self.without_code_blocks(text)):
            if rows and rows[0] and rows[0][0].lower() == "value":
                for row in rows[2:]:
                    cells = re.findall(r"`([^`]+)`", row[0])
                    if not cells:
                        self.problem(f"{doc}: chart values table row {row[0]!r} names no value")
                    names += cells
        for name in names:
            checked += 1
            if not self.value_exists(name.removesuffix(".*")):
                self.problem(f"{doc}: chart value `{name}` is not a key of chart/values.yaml")
        return checked

    # ------------------------------------------------------------------ links
    @staticmethod
    def slug(heading: str) -> str:
        """GitHub's anchor for a heading (github-slugger): the rendered text, lower case,
        punctuation other than `-` and `_` dropped, each space a hyphen."""
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip())  # links -> text
        text = re.sub(r"[`*]", "", text).lower()
        text = re.sub(r"[^\w\- ]", "", text)
        return text.replace(" ", "-")

    def anchors(self, path: Path) -> set[str]:
        seen: dict[str, int] = {}
        result = set()
        for heading in re.findall(r"^#{1,6} (.+?)#*\s*$", self.without_code_blocks(path.read_text()), re.M):
            base = self.slug(heading)
            count = seen.get(base, 0)
            seen[base] = count + 1
            result.add(base if count == 0 else f"{base}-{count}")
        return result

    def headings(self, path: Path) -> set[str]:
        text = self.without_code_blocks(path.read_text())
        return {re.sub(r"[`*]", "", h).strip().lower()
                for h in re.findall(r"^#{1,6} (.+?)\s*$", text, re.M)}

    def check_links(self) -> None:
        checked = 0
        for doc, text in self.docs.items():
            prose = self.without_code_blocks(text)
            for target in re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", prose):
                if re.match(r"[a-z][a-z0-9+.-]*:", target):
                    continue
                checked += 1
                file_part, _, anchor = target.partition("#")
                linked = (self.root / doc) if not file_part else (self.root / doc).parent / file_part
                linked = linked.resolve()
                if not linked.is_relative_to(self.root):
                    self.problem(f"{doc}: link to {target} leaves the repository (broken on GitHub)")
                elif not linked.exists():
                    self.problem(f"{doc}: link to {target}: {file_part} does not exist")
                elif anchor and linked.suffix == ".md" and anchor not in self.anchors(linked):
                    self.problem(f"{doc}: link to {target}: {linked.name} has no heading with anchor #{anchor}")
            for leak in sorted(set(re.findall(r"(?<![\w.~])/(?:work|root|home/\w+|Users/\w+)/[\w./-]*", text))):
                self.problem(f"{doc}: machine-specific absolute path {leak}")
        # Pointers from the code into DOCS.md ("see "Images on macOS" in DOCS.md").
        docs_headings = self.headings(self.root / "DOCS.md")
        for path in self.tracked_files:
            if path in DOCS or path.startswith("tests/docs/") or not path.startswith(
                    ("src/", "nix/", "chart/", "scripts/", ".ci/", ".github/")):
                continue
            text = (self.root / path).read_text(errors="replace")
            for title in re.findall(r"\"([^\"\n]{3,80})\" in DOCS\.md|DOCS\.md, \"([^\"\n]{3,80})\"", text):
                title = (title[0] or title[1]).strip()
                checked += 1
                if title.lower() not in docs_headings:
                    self.problem(f"{path} points to \"{title}\" in DOCS.md, which has no such heading")
        self.ok(f"links: {checked} relative links, anchors and pointers into DOCS.md resolve")

    # ------------------------------------------------------------- shellcheck
    def check_shellcheck(self) -> None:
        scripts = sorted(str(p.relative_to(self.root)) for p in (self.root / "scripts").glob("*.sh"))
        if (self.root / ".ci" / "run").exists():
            scripts.append(".ci/run")
        if not shutil.which("shellcheck"):
            self.problem("shellcheck is not installed (scripts/setup-debian.sh installs it)")
            return
        result = subprocess.run(["shellcheck", *scripts], cwd=self.root, capture_output=True, text=True)
        if result.returncode != 0:
            if not self.quiet:
                print(result.stdout.rstrip())
            self.problem(f"shellcheck found problems in {' '.join(scripts)}")
            return
        self.ok(f"shellcheck: {len(scripts)} scripts ({' '.join(scripts)})")

    # -------------------------------------------------------------------- run
    CHECKS = ("variables", "commands", "links", "shellcheck")

    def run(self, checks=CHECKS) -> list[str]:
        for name in DOCS:
            if not (self.root / name).is_file():
                self.problem(f"{name} is missing")
        if self.problems:
            return self.problems
        for name in checks:
            self._problems_before = len(self.problems)
            getattr(self, f"check_{name}")()
        return self.problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = Path(__file__).resolve().parents[2]
    parser.add_argument("--root", type=Path, default=here, help="repository root")
    parser.add_argument("--bin-dir", type=Path, help="where greeter and greeter-migrate are (target/debug)")
    parser.add_argument("checks", nargs="*", metavar="CHECK", help=" ".join(Checker.CHECKS))
    args = parser.parse_args()
    unknown = set(args.checks) - set(Checker.CHECKS)
    if unknown:
        parser.error(f"unknown checks {sorted(unknown)}; choose from {Checker.CHECKS}")
    checker = Checker(args.root, args.bin_dir)
    problems = checker.run(args.checks or Checker.CHECKS)
    placeholders = sum(text.count("TBD-by-lead") for text in checker.docs.values()) if not problems else 0
    if placeholders:
        print(f"note  {placeholders} 'TBD-by-lead' placeholders left in the docs (Performance)")
    print(f"check-docs: {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
