#!/usr/bin/env python3
"""Checks that README.md and DOCS.md tell the truth about the code:

1. the configuration table in DOCS.md lists exactly the variables src/config.rs reads
   (its VARIABLES constant, which a unit test ties to the loaders);
2. every command in their code blocks exists: `nix run .#APP` apps in nix/apps.nix,
   script paths, the binaries' subcommands and flags (from their --help), chart values
   named with --set;
3. every relative link, and every #anchor, resolves.

Run from the repository root; prints one line per problem and exits 1 if there is any.
"""
import re
import subprocess
import sys
from pathlib import Path

import yaml

DOCS = [Path("README.md"), Path("DOCS.md")]
problems: list[str] = []


def problem(text: str) -> None:
    problems.append(text)
    print(f"FAIL  {text}")


def rust_string_list(source: str, name: str) -> set[str]:
    match = re.search(rf"pub const {name}: &\[&str\] = &\[(.*?)\];", source, re.S)
    if not match:
        problem(f"src/config.rs has no {name} constant")
        return set()
    return set(re.findall(r'"([A-Z0-9_]+)"', match.group(1)))


def configuration_table(docs: str) -> set[str]:
    """Variables in the first column of the table under '## Configuration reference'."""
    section = re.search(r"^## Configuration reference\n(.*?)(?=^## )", docs, re.S | re.M)
    if not section:
        problem("DOCS.md has no '## Configuration reference' section")
        return set()
    names = set()
    for line in section.group(1).splitlines():
        cell = re.match(r"\|\s*`([A-Z0-9_]+)`", line)
        if cell:
            names.add(cell.group(1))
    return names


def check_variables() -> None:
    source = Path("src/config.rs").read_text()
    code = rust_string_list(source, "VARIABLES")
    secrets = rust_string_list(source, "SECRET_VARIABLES")
    table = configuration_table(Path("DOCS.md").read_text())
    for name in sorted(code - table):
        problem(f"DOCS.md configuration table lacks {name}, which the code reads")
    for name in sorted(table - code):
        problem(f"DOCS.md configuration table lists {name}, which the code does not read")
    docs = Path("DOCS.md").read_text()
    for name in sorted(secrets):
        if f"{name}_FILE" not in docs and "<NAME>_FILE" not in docs:
            problem(f"DOCS.md does not mention {name}_FILE")
    print(f"ok    configuration table: {len(table)} variables match src/config.rs")


def code_blocks(text: str) -> list[str]:
    """The command lines of shell code blocks. Every fence is paired first, so blocks in
    other languages stay aligned; in `console` blocks only `$ ` lines are commands."""
    blocks = []
    for lang, body in re.findall(r"```([\w-]*)\n(.*?)```", text, re.S):
        if lang == "console":
            blocks.append("\n".join(l[2:] for l in body.splitlines() if l.startswith("$ ")))
        elif lang in ("", "sh", "bash", "shell"):
            blocks.append(body)
    return blocks


def nix_apps() -> set[str]:
    source = Path("nix/apps.nix").read_text()
    return set(re.findall(r"^  ([a-z][a-z0-9-]*) = app \{", source, re.M))


def help_text(binary: str, *args: str) -> str:
    path = Path("target/debug") / binary
    if not path.exists():
        subprocess.run(["cargo", "build", "--quiet", "--bins"], check=True)
    return subprocess.run([str(path), *args, "--help"], capture_output=True, text=True).stdout


def values_keys(node, prefix="") -> set[str]:
    keys = set()
    if isinstance(node, dict):
        for key, value in node.items():
            full = f"{prefix}{key}"
            keys.add(full)
            keys |= values_keys(value, full + ".")
    return keys


def check_commands() -> None:
    apps = nix_apps() | {"default"}
    greeter_help = help_text("greeter")
    subcommands = set(re.findall(r"^  ([a-z]+)\s", greeter_help, re.M))
    flags = {
        "greeter-migrate": set(re.findall(r"--[a-z-]+", help_text("greeter-migrate"))),
        "createsuperuser": set(re.findall(r"--[a-z-]+", help_text("greeter", "createsuperuser"))),
    }
    chart_keys = values_keys(yaml.safe_load(Path("chart/values.yaml").read_text()))
    checked = 0
    for doc in DOCS:
        for block in code_blocks(doc.read_text()):
            for raw in block.splitlines():
                line = raw.strip()
                if line.startswith("#") or not line:
                    continue
                line = re.sub(r"^\$ ", "", line)
                for app in re.findall(r"nix run \.#([A-Za-z0-9-]+)", line):
                    checked += 1
                    if app not in apps:
                        problem(f"{doc}: 'nix run .#{app}' but nix/apps.nix has no such app")
                for script in re.findall(r"(?:^|[\s(])((?:\./)?(?:scripts|nix/apps)/[\w.-]+\.sh)", line):
                    checked += 1
                    if not Path(script.removeprefix("./")).exists():
                        problem(f"{doc}: {script} does not exist")
                # The binaries as commands: after any VAR=value assignments, a path is ok.
                invocation = re.sub(r"^(?:[A-Z_][A-Z0-9_]*=\S*\s+)*", "", line)
                command = re.match(r"(?:[\w./-]*/)?(greeter|greeter-migrate)(?:\s+(.*))?$", invocation)
                if command:
                    checked += 1
                    binary, rest = command.group(1), command.group(2) or ""
                    words = rest.split()
                    if binary == "greeter" and words and not words[0].startswith("-"):
                        if words[0] not in subcommands:
                            problem(f"{doc}: 'greeter {words[0]}' is not a subcommand of greeter")
                        elif words[0] == "createsuperuser":
                            for flag in re.findall(r"(?<![\w-])--[a-z-]+", rest):
                                if flag not in flags["createsuperuser"]:
                                    problem(f"{doc}: greeter createsuperuser has no {flag}")
                    if binary == "greeter-migrate":
                        for flag in re.findall(r"(?<![\w-])--[a-z-]+", rest):
                            if flag not in flags["greeter-migrate"]:
                                problem(f"{doc}: greeter-migrate has no {flag}")
                for key in re.findall(r"--set(?:-string)? ([\w.]+)=", line):
                    checked += 1
                    if key not in chart_keys:
                        problem(f"{doc}: --set {key} is not a key of chart/values.yaml")
    print(f"ok    commands: {checked} references checked")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    return {slug(h) for h in re.findall(r"^#{1,6} (.+)$", text, re.M)}


def check_links() -> None:
    checked = 0
    for doc in DOCS:
        text = re.sub(r"```.*?```", "", doc.read_text(), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+://|mailto:", target):
                continue
            checked += 1
            file_part, _, anchor = target.partition("#")
            linked = doc if not file_part else (doc.parent / file_part)
            if not linked.exists():
                problem(f"{doc}: link to {target}: {file_part} does not exist")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                problem(f"{doc}: link to {target}: no heading with anchor #{anchor}")
    print(f"ok    links: {checked} relative links resolve")


def main() -> int:
    for doc in DOCS:
        if not doc.exists():
            problem(f"{doc} is missing")
    if problems:
        return 1
    check_variables()
    check_commands()
    check_links()
    print(f"test-docs: {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
