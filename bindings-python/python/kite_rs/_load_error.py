"""Why the native module `kite_rs._native` did not load, in words a user can act on."""

from __future__ import annotations

import os
import platform
import sysconfig

#: The platforms the release workflow publishes wheels for (abi3: CPython 3.9 and newer).
PREBUILT = (
    "Linux x86_64 and aarch64 with glibc 2.34+ (manylinux_2_34)",
    "macOS x86_64 and arm64",
    "Windows x86_64",
)

FROM_SOURCE = (
    "To build it from source (Rust 1.89+ and a C compiler): "
    "pip install --no-binary kite-rs kite-rs, or pip install . in a clone of "
    "https://github.com/kite-rs/kite-rs."
)


def explain(error: ImportError) -> ImportError:
    """An ImportError naming the native file that failed and why, or the missing platform."""
    here = os.path.dirname(os.path.abspath(__file__))
    files = sorted(
        os.path.join(here, f)
        for f in os.listdir(here)
        if f.startswith("_native") and not f.endswith((".pyi", ".py"))
    )
    if files:
        message = f"kite_rs: the native module {files[0]} failed to load: {error}"
    else:
        message = (
            f"kite_rs: no native module (kite_rs/_native.*) in {here} for this platform "
            f"({sysconfig.get_platform()}, {platform.python_implementation()} "
            f"{platform.python_version()}); prebuilt wheels exist for "
            f"{'; '.join(PREBUILT)}. {FROM_SOURCE}"
        )
    return ImportError(message, name="kite_rs._native", path=files[0] if files else None)
