#!/usr/bin/env bash
# The Python package as a user meets it: the wheel scripts/setup.sh built (target/wheels, the
# one .venv runs the pytest suite from) is checked with auditwheel (its manylinux tag must be
# what auditwheel finds), installed into a new virtual environment in a temporary directory
# outside the repository, and runs a kite and a call from there. Then the load errors: a
# damaged native module and a missing one. Run by scripts/test.sh; WHEEL=path overrides.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
shopt -s nullglob
wheels=(target/wheels/kite_rs-*.whl)
wheel=${WHEEL:-${wheels[0]:-}}
[ -n "$wheel" ] && [ -f "$wheel" ] || { echo "test-python-package: no wheel in target/wheels; run scripts/setup.sh" >&2; exit 1; }
wheel=$(realpath "$wheel")
echo "test-python-package: $(basename "$wheel") ($(($(stat -c %s "$wheel") / 1024)) KiB)"

# The platform tag in the file name and the one auditwheel derives from the symbols agree.
tag=$(basename "$wheel" .whl | awk -F- '{print $NF}')
show=$(.venv/bin/auditwheel show "$wheel")
echo "$show" | sed 's/^/  auditwheel: /' | head -8
found=$(sed -n 's/.*consistent with the following platform tag: "\([^"]*\)".*/\1/p' <<<"$show" | head -1)
[ -n "$found" ] || found=$(tr '\n' ' ' <<<"$show" | sed -n 's/.*platform tag: *"\([^"]*\)".*/\1/p')
[ "$found" = "$tag" ] || { echo "test-python-package: wheel tagged $tag, auditwheel says $found" >&2; exit 1; }
echo "test-python-package: tag $tag = auditwheel's"

work=$(mktemp -d "${TMPDIR:-/tmp}/kite-rs-py.XXXXXX")
trap 'rm -rf "$work"' EXIT
case "$work" in "$repo"/*) echo "test-python-package: $work is inside the repository" >&2; exit 1 ;; esac
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q --disable-pip-version-check --no-index "$wheel"
cd "$work"
cat >main.py <<'PY'
import asyncio

import kite_rs
from kite_rs import Kite, Request


async def main() -> None:
    k = Kite("math", "1.0.0")

    @k.handle("square", auth=False)
    async def square(req: Request, n: float) -> float:
        return n * n

    port = await k.start(port=0, host="127.0.0.1")
    me = Kite("math-client", "1.0.0")
    async with me.client(f"http://127.0.0.1:{port}/kite") as math:
        r = await math.tell("square", 4, timeout=5.0)
    me.close()
    k.close()
    assert r == 16, r
    print(f"python: kite_rs {kite_rs.__version__} from {kite_rs.__file__}: square(4) = {r}")


asyncio.run(main())
PY
KITE_HOME=$work/home "$work/venv/bin/python" main.py

# Load errors a user can act on.
native=$("$work/venv/bin/python" -c "import glob, os, importlib.util as u; d = os.path.dirname(u.find_spec('kite_rs').origin); print(glob.glob(d + '/_native*.so')[0])")
cp "$native" "$work/native.so"
head -c 4096 /dev/zero | tr '\0' x >"$native"
out=$("$work/venv/bin/python" -c "import kite_rs" 2>&1) && { echo "test-python-package: damaged module imported" >&2; exit 1; }
grep -q "the native module $native failed to load: .*invalid ELF header" <<<"$out" || { echo "$out" >&2; exit 1; }
echo "test-python-package: damaged module: $(tail -1 <<<"$out" | cut -c1-200)…"
rm "$native"
out=$("$work/venv/bin/python" -c "import kite_rs" 2>&1) && { echo "test-python-package: missing module imported" >&2; exit 1; }
grep -q "no native module .* for this platform .*prebuilt wheels exist for Linux x86_64.*build it from source" <<<"$out" || { echo "$out" >&2; exit 1; }
echo "test-python-package: missing module: $(tail -1 <<<"$out" | cut -c1-200)…"
cp "$work/native.so" "$native"
echo "test-python-package: ok"
