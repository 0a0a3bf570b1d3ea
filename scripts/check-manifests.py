#!/usr/bin/env python3
"""Checks what the package manifests promise (run by scripts/test.sh, so CI checks it):

- every workspace member's `rust-version` is the highest `rust-version` among the packages
  it builds on (its normal and build dependencies, transitively, with every feature on),
  as `cargo metadata` resolves them from Cargo.lock: neither a promise older toolchains
  cannot keep nor one higher than needed;
- one version everywhere: the workspace's `version` (Cargo.toml) is the version of every
  Rust package, of every path dependency on kite-rs that names one, of the Python package
  (pyproject.toml takes it from Cargo through maturin: `dynamic = ["version"]`), and of the
  npm packages (package.json, npm/*/package.json and the main package's
  optionalDependencies on them);
- the LICENSE copies in core/, cli/ and npm/*/ are the top LICENSE.

Exits non-zero, naming each mismatch.
"""

import glob
import json
import os
import subprocess
import sys
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_version(v):
    return tuple(int(x) for x in v.split("."))


def rust_versions(meta, errors):
    packages = {p["id"]: p for p in meta["packages"]}
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
    members = meta["workspace_members"]

    def deps(node_id):
        for dep in nodes[node_id]["deps"]:
            if any(k["kind"] in (None, "build") for k in dep["dep_kinds"]):
                yield dep["pkg"]

    for member in members:
        pkg = packages[member]
        seen, stack = set(), list(deps(member))
        while stack:
            d = stack.pop()
            if d in seen:
                continue
            seen.add(d)
            stack.extend(deps(d))
        needs = [
            (parse_version(packages[d]["rust_version"]), packages[d]["name"], packages[d]["version"])
            for d in seen
            if packages[d].get("rust_version")
        ]
        if not needs:
            continue
        highest, name, version = max(needs)
        declared = pkg.get("rust_version")
        want = ".".join(map(str, highest))
        if declared is None:
            errors.append(f"{pkg['name']}: no rust-version; its dependencies need {want} ({name} {version})")
        elif parse_version(declared) + (0,) * (3 - len(declared.split("."))) != highest + (0,) * (3 - len(highest)):
            errors.append(
                f"{pkg['name']}: rust-version {declared}, but the highest among its dependencies is "
                f"{want} ({name} {version})"
            )
        else:
            print(f"check-manifests: {pkg['name']} rust-version {declared} = {name} {version}'s")


def versions(meta, errors):
    with open(os.path.join(ROOT, "Cargo.toml"), "rb") as f:
        version = tomllib.load(f)["workspace"]["package"]["version"]
    packages = {p["id"]: p for p in meta["packages"]}
    for member in meta["workspace_members"]:
        pkg = packages[member]
        if pkg["version"] != version:
            errors.append(f"{pkg['manifest_path']}: version {pkg['version']}, workspace says {version}")
        for dep in pkg["dependencies"]:
            if dep["name"] == "kite-rs" and dep.get("path") and dep["req"] not in ("*", f"^{version}"):
                errors.append(f"{pkg['name']}: dependency on kite-rs asks for {dep['req']}, not {version}")

    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]
    if "version" in project:
        if project["version"] != version:
            errors.append(f"pyproject.toml: version {project['version']}, Cargo.toml says {version}")
    elif "version" not in project.get("dynamic", []):
        errors.append("pyproject.toml: neither a version nor dynamic = [\"version\"] (from Cargo.toml)")

    with open(os.path.join(ROOT, "package.json")) as f:
        main = json.load(f)
    if main["version"] != version:
        errors.append(f"package.json: version {main['version']}, Cargo.toml says {version}")
    optional = main.get("optionalDependencies", {})
    platform_packages = sorted(glob.glob(os.path.join(ROOT, "npm", "*", "package.json")))
    if not platform_packages:
        errors.append("npm/: no platform packages")
    for path in platform_packages:
        with open(path) as f:
            sub = json.load(f)
        rel = os.path.relpath(path, ROOT)
        if sub["version"] != version:
            errors.append(f"{rel}: version {sub['version']}, Cargo.toml says {version}")
        if optional.get(sub["name"]) != version:
            errors.append(
                f"package.json: optionalDependencies[{sub['name']!r}] is {optional.get(sub['name'])!r}, "
                f"not {version}"
            )
    for name in optional:
        if not any(json.load(open(p))["name"] == name for p in platform_packages):
            errors.append(f"package.json: optional dependency {name} has no npm/ package")
    print(f"check-manifests: version {version} in Cargo.toml, pyproject.toml (dynamic), "
          f"package.json and {len(platform_packages)} npm platform package(s)")


def licenses(errors):
    """The LICENSE copies that packages carry (crates, npm platform packages) are the top one."""
    with open(os.path.join(ROOT, "LICENSE"), "rb") as f:
        top = f.read()
    copies = [os.path.join(ROOT, d, "LICENSE") for d in ("core", "cli")]
    copies += sorted(glob.glob(os.path.join(ROOT, "npm", "*", "LICENSE")))
    for path in copies:
        rel = os.path.relpath(path, ROOT)
        if not os.path.exists(path):
            errors.append(f"{rel}: missing (copy the top LICENSE)")
            continue
        with open(path, "rb") as f:
            if f.read() != top:
                errors.append(f"{rel}: differs from the top LICENSE")
    print(f"check-manifests: LICENSE and its {len(copies)} copies agree")


def main():
    meta = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--all-features", "--locked"],
            cwd=ROOT,
            check=True,
            stdout=subprocess.PIPE,
        ).stdout
    )
    errors = []
    rust_versions(meta, errors)
    versions(meta, errors)
    licenses(errors)
    for e in errors:
        print(f"check-manifests: {e}", file=sys.stderr)
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
