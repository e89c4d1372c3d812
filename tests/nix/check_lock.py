"""flake.lock sanity: valid lock v7 whose nodes are exactly the flake's inputs, each
locked to the pins checked in ../shared/flake-pins.md (when that file is present).

Usage: check_lock.py FLAKE_LOCK INPUTS_JSON [FLAKE_PINS_MD]
INPUTS_JSON is `(import ./flake.nix).inputs` evaluated by nix-instantiate --json.
Prints one line per finding; exit 1 if any.
"""

import json
import re
import sys


def main() -> int:
    lock_path, inputs_path = sys.argv[1], sys.argv[2]
    pins_path = sys.argv[3] if len(sys.argv) > 3 else None
    errors = []

    with open(lock_path) as f:
        lock = json.load(f)
    with open(inputs_path) as f:
        inputs = json.load(f)

    if lock.get("version") != 7:
        errors.append(f"version is {lock.get('version')!r}, expected 7")
    nodes = lock.get("nodes", {})
    root_name = lock.get("root")
    root = nodes.get(root_name, {})
    if root_name != "root" or "locked" in root:
        errors.append("the root node must be named 'root' and have no 'locked'")
    root_inputs = root.get("inputs", {})
    if sorted(root_inputs) != sorted(inputs):
        errors.append(f"root inputs {sorted(root_inputs)} != flake inputs {sorted(inputs)}")
    if sorted(nodes) != sorted(set(root_inputs.values()) | {root_name}):
        errors.append(f"unexpected nodes: {sorted(nodes)}")

    for name, spec in inputs.items():
        node = nodes.get(root_inputs.get(name, ""), {})
        locked, original = node.get("locked", {}), node.get("original", {})
        # github:OWNER/REPO[/REF] must match the node's original reference.
        m = re.fullmatch(r"github:([^/]+)/([^/]+)(?:/(.+))?", spec.get("url", ""))
        if not m:
            errors.append(f"{name}: unsupported url {spec.get('url')!r}")
            continue
        owner, repo, ref = m.groups()
        want = {"owner": owner, "repo": repo, "type": "github"} | ({"ref": ref} if ref else {})
        if original != want:
            errors.append(f"{name}: original {original} != {want}")
        for key in ("lastModified", "narHash", "rev", "owner", "repo", "type"):
            if key not in locked:
                errors.append(f"{name}: locked has no {key}")
        if not re.fullmatch(r"[0-9a-f]{40}", locked.get("rev", "")):
            errors.append(f"{name}: rev is not a 40-hex commit")
        if not re.fullmatch(r"sha256-[A-Za-z0-9+/]{43}=", locked.get("narHash", "")):
            errors.append(f"{name}: narHash is not an SRI sha256")
        follows = {k: v["follows"].split("/") for k, v in spec.get("inputs", {}).items() if "follows" in v}
        if node.get("inputs", {}) != follows:
            errors.append(f"{name}: node inputs {node.get('inputs')} != follows {follows}")

    if pins_path:
        with open(pins_path) as f:
            text = f.read()
        block = re.search(r"```json\n(.*?)```", text, re.S)
        pins = json.loads("{" + block.group(1) + "}") if block else {}
        if not pins:
            errors.append(f"no pins found in {pins_path}")
        for name, pin in pins.items():
            node = nodes.get(name)
            if node is None:
                errors.append(f"{name}: pinned in flake-pins.md but not in flake.lock")
            elif node != pin:
                errors.append(f"{name}: differs from flake-pins.md")
        print(f"flake.lock: {len(pins)} nodes compared with flake-pins.md")

    for e in errors:
        print(f"flake.lock: {e}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
