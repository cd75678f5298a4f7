#!/usr/bin/env python3
"""Extract the STIX 2.1 patterning conformance cases of the OASIS reference packages.

Usage: python extract.py parser|matcher

Reads the pytest modules shipped inside the installed packages (nothing is copied into
the Phalanx repository):

- parser:  stix2patterns/test/v21/test_*.py   (stix2-patterns 2.1.2)
- matcher: stix2matcher/test/v21/test_*.py    (stix2-matcher 3.0.0)

For every parametrized case it finds the expected outcome by running the test function
with the reference entry point (`validate`, `Pattern`, `match`) replaced by a fake that
records its arguments and produces one outcome at a time (valid / invalid; match /
no match / MatcherException / ParseException): the outcome under which the test passes
is the expected one. The reference implementation itself is never asked for answers.

Prints one JSON object per line:
  {"meta": {...}}                                             first line
  {"suite": "parser", "id": ..., "pattern": ..., "expect": "valid"|"invalid"}
  {"suite": "matcher", "id": ..., "pattern": ..., "stix_version": "2.0"|"2.1",
   "observations": [...], "expect": "match"|"nomatch"|"error"|"parse_error",
   "note": ...}
  {"suite": ..., "id": ..., "skip": "reason"}                 cases that test internals
Exit status 2 with a message on stderr when the packages are missing.
"""

import copy
import importlib
import inspect
import json
import pkgutil
import sys

SETUP = (
    "install the reference packages into the Python the test uses "
    "(PHALANX_VENV_PYTHON, default <workspace>/.venv/bin/python):\n"
    "  pip install 'stix2-patterns==2.1.2' 'stix2-matcher==3.0.0' pytest"
)


def die(msg):
    print(f"extract.py: {msg}\n{SETUP}", file=sys.stderr)
    sys.exit(2)


try:
    import pytest  # noqa: F401  (the test modules import it)
except ImportError as e:
    die(f"cannot import pytest: {e}")


def parametrized_cases(fn):
    """Yield (case_index, kwargs) for a pytest-parametrized function."""
    marks = [m for m in getattr(fn, "pytestmark", []) if m.name == "parametrize"]
    if len(marks) != 1:
        raise ValueError(f"{fn.__name__}: expected one parametrize mark, found {len(marks)}")
    argnames, argvalues = marks[0].args[0], marks[0].args[1]
    if isinstance(argnames, str):
        argnames = [a.strip() for a in argnames.split(",") if a.strip()]
    for i, values in enumerate(argvalues):
        if hasattr(values, "values") and hasattr(values, "marks"):  # pytest.param
            values = values.values
            if len(argnames) == 1:
                values = values[0]
        if len(argnames) == 1:
            yield i, {argnames[0]: values}
        else:
            yield i, dict(zip(argnames, values))


def passes(fn, kwargs):
    try:
        fn(**copy.deepcopy(kwargs))
        return True
    except KeyboardInterrupt:
        raise
    except BaseException:  # AssertionError, pytest.raises' Failed, anything else
        return False


def test_functions(module):
    for name, fn in sorted(vars(module).items()):
        if name.startswith("test_") and inspect.isfunction(fn):
            yield name, fn


def modules(package):
    try:
        pkg = importlib.import_module(package)
    except ImportError as e:
        die(f"cannot import {package}: {e}")
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.name.startswith("test_"):
            yield importlib.import_module(f"{package}.{info.name}")


def emit(obj):
    sys.stdout.write(json.dumps(obj, ensure_ascii=True, sort_keys=True) + "\n")


# ----------------------------------------------------------------------------- parser

def extract_parser():
    from stix2patterns.v21.pattern import Pattern as RealPattern

    for module in modules("stix2patterns.test.v21"):
        short = module.__name__.rsplit(".", 1)[-1]
        for name, fn in test_functions(module):
            for i, kwargs in parametrized_cases(fn):
                cid = f"{short}::{name}[{i}]"
                seen = []

                class AnyPrefix(str):
                    def startswith(self, *a, **k):
                        return True

                def fake_validate(pattern, *a, ret_errs=False, **k):
                    seen.append(pattern)
                    ok = fake_validate.outcome
                    if ret_errs:
                        return ok, ([] if ok else [AnyPrefix("FAIL")])
                    return ok

                built = []

                class RecordingPattern(RealPattern):
                    def __init__(self, pattern, *a, **k):
                        seen.append(pattern)
                        super().__init__(pattern, *a, **k)
                        built.append(pattern)

                outcomes = []
                if hasattr(module, "validate"):
                    saved = module.validate
                    module.validate = fake_validate
                    try:
                        for outcome in (True, False):
                            fake_validate.outcome = outcome
                            if passes(fn, kwargs):
                                outcomes.append("valid" if outcome else "invalid")
                    finally:
                        module.validate = saved
                elif hasattr(module, "Pattern"):
                    # Inspector tests: the pattern is valid when Pattern() accepts it. The
                    # rest of the test checks the reference's own inspection data (one
                    # such case fails against stix2-patterns 2.1.2 itself).
                    saved = module.Pattern
                    module.Pattern = RecordingPattern
                    try:
                        passes(fn, kwargs)
                        if built:
                            outcomes.append("valid")
                    finally:
                        module.Pattern = saved
                patterns = sorted(set(seen))
                if len(outcomes) != 1 or len(patterns) != 1:
                    emit({"suite": "parser", "id": cid,
                          "skip": f"could not classify (outcomes {outcomes}, {len(patterns)} patterns)"})
                    continue
                emit({"suite": "parser", "id": cid, "pattern": patterns[0], "expect": outcomes[0]})


# ----------------------------------------------------------------------------- matcher

def extract_matcher():
    from stix2matcher.matcher import MatcherException
    from stix2patterns.pattern import ParseException

    class FakeMatch:
        def __init__(self):
            self.calls = []
            self.mode = None

        def __call__(self, pattern, observed_data_sdos, verbose=False, stix_version="2.0"):
            self.calls.append((pattern, copy.deepcopy(observed_data_sdos), stix_version))
            if self.mode == "match":
                return [{"objects": [{"id": "observed-data--fake"}]}]
            if self.mode == "nomatch":
                return []
            if self.mode == "error":
                raise MatcherException("fake")
            raise ParseException("fake")

    for module in modules("stix2matcher.test.v21"):
        short = module.__name__.rsplit(".", 1)[-1]
        for name, fn in test_functions(module):
            for i, kwargs in parametrized_cases(fn):
                cid = f"{short}::{name}[{i}]"
                if not hasattr(module, "match"):
                    emit({"suite": "matcher", "id": cid, "skip": "module does not call match()"})
                    continue
                fake = FakeMatch()
                saved = module.match
                module.match = fake
                outcomes = []
                try:
                    for mode in ("match", "nomatch", "error", "parse_error"):
                        fake.mode = mode
                        if passes(fn, kwargs):
                            outcomes.append(mode)
                finally:
                    module.match = saved
                calls = {json.dumps(c, sort_keys=True) for c in fake.calls}
                if not fake.calls:
                    emit({"suite": "matcher", "id": cid,
                          "skip": f"tests a matcher internal ({name}), not pattern semantics"})
                    continue
                if len(calls) != 1:
                    emit({"suite": "matcher", "id": cid, "skip": "test calls match() with varying arguments"})
                    continue
                pattern, observations, version = fake.calls[0]
                note = None
                if not outcomes:
                    # The test inspects the returned observed-data (which ones matched):
                    # it needs a match; the exact binding is the reference's choice.
                    outcomes, note = ["match"], "test also asserts which observed-data matched"
                if len(outcomes) != 1:
                    emit({"suite": "matcher", "id": cid, "skip": f"ambiguous outcomes {outcomes}"})
                    continue
                emit({"suite": "matcher", "id": cid, "pattern": pattern, "stix_version": version,
                      "observations": observations, "expect": outcomes[0], "note": note})


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in ("parser", "matcher"):
        print(__doc__, file=sys.stderr)
        sys.exit(64)
    versions = {}
    for dist in ("stix2-patterns", "stix2-matcher", "pytest"):
        try:
            from importlib.metadata import version
            versions[dist] = version(dist)
        except Exception:
            versions[dist] = None
    emit({"meta": {"suite": sys.argv[1], "versions": versions, "python": sys.version.split()[0]}})
    if sys.argv[1] == "parser":
        extract_parser()
    else:
        extract_matcher()


if __name__ == "__main__":
    main()
