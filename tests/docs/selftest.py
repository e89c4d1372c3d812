#!/usr/bin/env python3
"""Proves that every check in check_docs.py can fail: on a copy of the repository, each
case plants one lie (a variable the code does not read, an app that does not exist, a
broken anchor, a script shellcheck rejects, ...) and expects the matching problem. A
check that cannot fail is no check. Also requires the unmodified copy to pass.

Run from anywhere; exits 1 if a case is not detected. Takes a few seconds.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_docs import Checker  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def append(path: str, text: str):
    return lambda root: (root / path).write_text((root / path).read_text() + text)


def replace(path: str, old: str, new: str):
    def edit(root: Path) -> None:
        content = (root / path).read_text()
        if old not in content:
            raise AssertionError(f"self-test setup: {old!r} not in {path}")
        (root / path).write_text(content.replace(old, new, 1))
    return edit


def write(path: str, text: str):
    def edit(root: Path) -> None:
        (root / path).write_text(text)
    return edit


def remove_line_starting(path: str, start: str):
    def edit(root: Path) -> None:
        lines = (root / path).read_text().splitlines(keepends=True)
        kept = [l for l in lines if not l.startswith(start)]
        if len(kept) != len(lines) - 1:
            raise AssertionError(f"self-test setup: not exactly one line of {path} starts with {start!r}")
        (root / path).write_text("".join(kept))
    return edit


def block(command: str) -> str:
    return f"\n```sh\n{command}\n```\n"


# (name, check, edit, text expected in a problem)
CASES = [
    ("variable missing from the table", "variables",
     remove_line_starting("DOCS.md", "| `DATABASE_POOL_MAX` |"), "lacks DATABASE_POOL_MAX"),
    ("variable the code does not read", "variables",
     replace("DOCS.md", "| `DATABASE_PORT` |", "| `DATABASE_SCHEMA` | no | `public` | schema |\n| `DATABASE_PORT` |"),
     "lists DATABASE_SCHEMA"),
    ("code reads a variable the docs lack", "variables",
     replace("src/config.rs", '    "LOG_FORMAT",\n', '    "LOG_FORMAT",\n    "LOG_LEVEL",\n'), "lacks LOG_LEVEL"),
    ("secret without its _FILE form", "variables",
     replace("DOCS.md", "`PAYMENT_API_KEY_FILE` works too", "kept secret"), "PAYMENT_API_KEY_FILE"),
    ("setting nothing reads", "variables",
     append("DOCS.md", "\nSet `GREETER_TURBO=1` for speed.\n"), "GREETER_TURBO"),
    ("unknown nix app", "commands", append("README.md", block("nix run .#deplyo")), "no app deplyo"),
    ("unknown nix app in an indented fence", "commands",
     append("DOCS.md", "\n1. Then:\n\n   ```sh\n   nix run .#deploy-all\n   ```\n"), "no app deploy-all"),
    ("unknown chart value in a code span broken over two lines", "commands",
     append("DOCS.md", "\nRun `helm upgrade greeter ./chart\n--set image.tagg=x`.\n"), "no key image.tagg"),
    ("unknown nix package", "commands",
     append("DOCS.md", block("nix build .#packages.x86_64-linux.imagee")), "no package imagee"),
    ("unknown flake system", "commands",
     append("DOCS.md", block("nix build .#packages.riscv64-linux.image")), "riscv64-linux is not a system"),
    ("missing script", "commands", append("README.md", block("scripts/setup-fedora.sh")), "scripts/setup-fedora.sh does not exist"),
    ("missing repository path in prose", "commands",
     append("DOCS.md", "\nSee `chart/values-dev.yaml`.\n"), "chart/values-dev.yaml does not exist"),
    ("unknown greeter subcommand", "commands", append("DOCS.md", block("greeter migrate")), "no such subcommand"),
    ("unknown createsuperuser flag", "commands",
     append("DOCS.md", block("echo pw | kubectl exec -i deploy/greeter -- greeter createsuperuser --email a@b")),
     "--email is not an option"),
    ("unknown greeter-migrate flag", "commands",
     append("DOCS.md", "\n```console\n$ greeter-migrate --wait --retries 3\n```\n"), "--retries is not an option"),
    ("unknown chart value in --set", "commands",
     append("DOCS.md", block("helm upgrade --install greeter ./chart --set image.tagg=x")), "no key image.tagg"),
    ("unknown chart value in prose", "commands",
     append("DOCS.md", "\nTune `autoscaling.maxReplica`.\n"), "`autoscaling.maxReplica`"),
    ("unknown chart value in the values table", "commands",
     replace("DOCS.md", "| `replicaCount` |", "| `replicas` |"), "`replicas`"),
    ("broken anchor", "links",
     append("README.md", "\n[x](DOCS.md#no-such-section)\n"), "#no-such-section"),
    ("broken file link", "links", append("DOCS.md", "\n[x](docs/missing.md)\n"), "docs/missing.md"),
    ("link out of the repository", "links",
     append("README.md", "\n[contract](../shared/DESIGN.md)\n"), "leaves the repository"),
    ("machine-specific path", "links",
     append("DOCS.md", "\nThe checkout is in /home/steve/greeter here.\n"), "machine-specific absolute path"),
    ("code points to a missing DOCS.md heading", "links",
     replace("DOCS.md", "### Images on macOS", "### Building images on a Mac"), "Images on macOS"),
    ("shellcheck finding", "shellcheck",
     write("scripts/broken-example.sh", "#!/usr/bin/env bash\nrm -rf $1/tmp\n"), "shellcheck found problems"),
]


def copy_repository(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                           cwd=REPO, capture_output=True, text=True, check=True).stdout.split("\n")
    for name in filter(None, files):
        source = REPO / name
        if source.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def main() -> int:
    bin_dir = REPO / "target" / "debug"
    failures = 0
    with tempfile.TemporaryDirectory(prefix="greeter-docs-selftest-") as tmp:
        root = Path(tmp) / "repo"
        copy_repository(root)
        pristine = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}

        baseline = Checker(root, bin_dir, quiet=True).run()
        if baseline:
            print(f"FAIL  the unmodified copy already has problems: {baseline}")
            return 1
        for name, check, edit, expected in CASES:
            edit(root)
            problems = Checker(root, bin_dir, quiet=True).run([check])
            if any(expected in p for p in problems):
                print(f"ok    detects: {name}")
            else:
                failures += 1
                print(f"FAIL  not detected: {name} (expected {expected!r}, got {problems})")
            for path in [p for p in root.rglob("*") if p.is_file() and p not in pristine]:
                path.unlink()
            for path, content in pristine.items():
                if path.read_bytes() != content:
                    path.write_bytes(content)
    print(f"selftest: {len(CASES) - failures} of {len(CASES)} planted lies detected")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
