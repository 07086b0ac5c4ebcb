"""Build the Sluice Python bindings: the package `sluice` and its C extension
`sluice._sluice`, linked against the static libsluice built by CMake.

    ./scripts/build.sh                       # builds build/lib/libsluice.a
    cd bindings/python
    /usr/bin/python3 setup.py build_ext --inplace     # for PYTHONPATH use
    /usr/bin/python3 -m pip install --no-build-isolation .   # into a venv

Where libsluice.a is looked for, first match wins:
  1. the environment variable SLUICE_BUILD_DIR (its lib/ directory),
  2. SLUICE_LIB_DIR (a directory holding libsluice.a),
  3. ../../build/lib next to this file (the repository's default build).
If the build directory was configured with -DSLUICE_SANITIZE=ON, the
extension is compiled and linked with ASan/UBSan too (then run Python with
libasan preloaded; scripts/python-test.sh does).

No package index is needed: only setuptools (python3-setuptools) and the
CPython headers (python3-dev).
"""

import os
import sys

from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))


def _build_dir():
    if os.environ.get("SLUICE_BUILD_DIR"):
        return os.path.abspath(os.environ["SLUICE_BUILD_DIR"])
    if os.environ.get("SLUICE_LIB_DIR"):
        return None
    return os.path.join(ROOT, "build")


def _lib_dir():
    if os.environ.get("SLUICE_LIB_DIR") and not os.environ.get(
            "SLUICE_BUILD_DIR"):
        return os.path.abspath(os.environ["SLUICE_LIB_DIR"])
    return os.path.join(_build_dir(), "lib")


def _sanitized(build_dir):
    if build_dir is None:
        return False
    try:
        with open(os.path.join(build_dir, "CMakeCache.txt")) as f:
            return any(line.startswith("SLUICE_SANITIZE:BOOL=ON")
                       for line in f)
    except OSError:
        return False


def _static_libs(lib_dir):
    """Full paths of the static archives to link, in link order."""
    main = os.path.join(lib_dir, "libsluice.a")
    if not os.path.exists(main):
        # Only fail when actually building the extension: `setup.py --help`,
        # sdist and the like need no library.
        if any(a.startswith(("build", "install", "bdist", "develop",
                             "editable_wheel", "dist_info"))
               for a in sys.argv[1:]):
            sys.stderr.write(
                "sluice: %s not found.\n"
                "Build the C library first (./scripts/build.sh from the "
                "repository root),\nor point SLUICE_BUILD_DIR at a CMake "
                "build directory (or SLUICE_LIB_DIR at the directory holding "
                "libsluice.a).\n" % main)
            sys.exit(1)
        return []
    libs = [main]
    # libsluice links the protocol codec; if the archive does not bundle it,
    # it is a separate archive next to it.
    proto = os.path.join(lib_dir, "libsl_protocol.a")
    if os.path.exists(proto):
        libs.append(proto)
    return libs


build_dir = _build_dir()
lib_dir = _lib_dir()
# The project's warning flags; -Werror only when asked (scripts/python-test.sh
# sets SLUICE_WERROR=1), so a user's newer compiler or Python headers cannot
# break an install over a new warning.
extra_compile = ["-std=gnu11", "-Wall", "-Wextra", "-Wformat=2",
                 "-Wstrict-prototypes", "-Wno-unused-parameter"]
if os.environ.get("SLUICE_WERROR") == "1":
    extra_compile.append("-Werror")
extra_link = []
if _sanitized(build_dir):
    extra_compile += ["-fsanitize=address,undefined",
                      "-fno-omit-frame-pointer"]
    extra_link += ["-fsanitize=address,undefined"]

ext = Extension(
    "sluice._sluice",
    sources=[os.path.join("src", "_sluice.c")],
    include_dirs=[os.path.join(ROOT, "client", "include")],
    extra_objects=_static_libs(lib_dir),
    libraries=["zstd", "ssl", "crypto", "pthread"],
    extra_compile_args=extra_compile,
    extra_link_args=extra_link,
)

setup(
    name="sluice",
    version="0.1.0",
    description="Python bindings for the Sluice message broker (over "
                "libsluice)",
    long_description=open(os.path.join(HERE, "README.md")).read()
    if os.path.exists(os.path.join(HERE, "README.md")) else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.8",
    packages=["sluice"],
    package_data={"sluice": ["py.typed", "*.pyi"]},
    ext_modules=[ext],
    zip_safe=False,
)
