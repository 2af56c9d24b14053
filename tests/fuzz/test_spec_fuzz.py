"""Arbitrary YAML into the sweep-spec parser: a SweepSpec or a SpecError (exit code 2), one
line per problem naming the field (or the spec's source), never a traceback — and a spec that
validates expands into its cells.

Property tests (hypothesis) drive the in-process parser (`spec.parse_sweep_text`, what
`ttscale sweep validate|run|submit` and the flows call) with: any text; any YAML-dumpable
structure; a valid spec with one field replaced by an arbitrary value, removed, or joined by
an unknown one; and snippets with YAML tags, anchors and merge keys. The CLI cases are in
test_cli_bad_input_fuzz.py."""

from __future__ import annotations

import re

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ttscale.errors import SpecError, TtscaleError
from ttscale.planning import expand_cells
from ttscale.spec import SweepSpec, parse_sweep_text, read_sweep_file
from ttscale.store import spec_hash
from tests.fuzz import fuzz_examples

FUZZ = settings(max_examples=fuzz_examples(), deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
SOURCE = "fuzz.yaml"
VALID = {
    "name": "fuzz",
    "models": ["smollm2-135m"],
    "verifiers": ["arithmetic"],
    "strategies": [{"name": "best_of_n"}, {"name": "beam_search", "beam_width": 2, "n_iterations": 3}],
    "budgets": [2, 4],
    "datasets": [{"name": "arith", "limit": 5}],
    "seeds": [0],
    "sampling": {"temperature": 0.8, "max_tokens": 64},
    "shard_size": 2,
}
# A field path as format_validation_error writes it: name, name[0], name[0].sub, [3] (a non-string key).
FIELD_LINE = re.compile(r"^(?:[A-Za-z_][\w\-]*|\[[^\n]*?\])(?:\.[A-Za-z_][\w\-]*|\[[^\n]*?\])*: \S")


def check_outcome(text: str) -> SweepSpec | None:
    """Parse `text`; on success the spec must expand and hash; on failure the error must be a
    SpecError whose every line names a field or the source."""
    try:
        spec = parse_sweep_text(text, source=SOURCE)
    except SpecError as err:
        assert_error_lines(err)
        return None
    # What `sweep validate` does next: every accepted spec expands into valid cells.
    try:
        cells = expand_cells(spec)
    except SpecError as err:  # e.g. a cell repeated through duplicate verifiers: still one line per problem
        assert_error_lines(err)
        return None
    assert all(p.cell.n in spec.budgets for p in cells)
    assert len(spec_hash(spec)) == 64
    return spec


def assert_error_lines(err: TtscaleError) -> None:
    assert isinstance(err, TtscaleError) and err.exit_code == 2
    message = str(err)
    assert message, "empty error message"
    for line in message.split("\n"):
        assert line.strip(), f"blank line in {message!r}"
        assert line.startswith(f"{SOURCE}: ") or FIELD_LINE.match(line), f"line does not name a field: {line!r}"
        assert len(line) <= 1200, f"line of {len(line)} characters"
        assert "Traceback" not in line


# ---- any text ---------------------------------------------------------------------------------

YAML_CHARS = st.characters(codec="utf-8", exclude_categories=("Cs",))


@FUZZ
@given(st.text(alphabet=YAML_CHARS, max_size=300))
@example("a: 2001-13-14")  # safe_load raised ValueError (a bad timestamp) before the fix
@example("a: !!timestamp x")  # ... AttributeError
@example("a: !!float x")  # ... ValueError
@example("[" * 5000)  # ... RecursionError
@example("{" * 5000)
@example("!!python/object/apply:os.system ['echo pwned']")
@example("\x00")
@example("name: [\x85]")
def test_any_text_is_a_spec_or_a_one_line_spec_error(text):
    check_outcome(text)


# ---- any YAML structure -----------------------------------------------------------------------

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.sampled_from(["", "majority", "best_of_n", "beam_search", "dvts", "self_refine", "arith", "jsonl", "last", "min"])
)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8) | st.integers(), children, max_size=4),
    max_leaves=12,
)


def dump(value) -> str:
    return yaml.safe_dump(value, allow_unicode=True, sort_keys=False)


@FUZZ
@given(VALUES)
def test_any_yaml_structure_is_a_spec_or_a_one_line_spec_error(value):
    check_outcome(dump(value))


def _paths(value, prefix=()):
    """Every path into a nested dict/list (the places a mutation can hit)."""
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*prefix, i))


VALID_PATHS = [p for p in _paths(VALID) if p]


def _set(value, path, new):
    import copy

    out = copy.deepcopy(value)
    target = out
    for key in path[:-1]:
        target = target[key]
    if new is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = new
    return out


_DELETE = object()


@FUZZ
@given(st.sampled_from(VALID_PATHS), VALUES | st.just(_DELETE))
def test_one_bad_field_is_named(path, new):
    mutated = _set(VALID, path, new)
    spec = check_outcome(dump(mutated))
    if spec is None:
        return
    # Accepted: the value really was acceptable for that field (e.g. 4 for a budget).
    assert isinstance(spec, SweepSpec)


@FUZZ
@given(st.text(min_size=1, max_size=30).filter(lambda k: k not in SweepSpec.model_fields), VALUES)
def test_unknown_keys_are_named(key, value):
    with pytest.raises(SpecError) as err:
        parse_sweep_text(dump({**VALID, key: value}), source=SOURCE)
    assert_error_lines(err.value)
    assert "Extra inputs are not permitted" in str(err.value)


# ---- tags, anchors, merge keys ----------------------------------------------------------------

FRAGMENTS = [
    "!!python/object:os.system {}", "!!python/object/apply:os.system ['true']", "!!python/name:os.system",
    "!!python/tuple [1, 2]", "!!binary aGk=", "!!binary '@@@'", "!!timestamp 2001-12-14", "!!timestamp nope",
    "!!float nope", "!!int 0x1F", "!!int nope", "!!bool maybe", "!!set {a, b}", "!!omap [a: 1]", "!!str 1",
    "2001-02-30", "2001-13-01 10:00:00", "&a [1, 2]", "*a", "*undefined", "{<<: {name: x}}", ".nan", ".inf",
    "0o17", "1_000", "1e400", "-1e400", "~", "'\\x00'", '"\\ud800"', "[" * 60 + "]" * 60, "|\n  block", "? complex\n: key",
]  # fmt: skip
KEYS = ["name", "models", "verifiers", "strategies", "budgets", "datasets", "seeds", "sampling", "shard_size", "retries", "run_on", "other"]


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(KEYS), st.sampled_from(FRAGMENTS)), min_size=1, max_size=5))
def test_tags_anchors_and_odd_scalars_are_spec_errors(pairs):
    base = {k: v for k, v in VALID.items() if k not in {key for key, _ in pairs}}
    text = dump(base) + "".join(f"{key}: {fragment}\n" for key, fragment in pairs)
    check_outcome(text)


def test_python_tags_are_refused_and_never_run(tmp_path):
    marker = tmp_path / "pwned"
    text = f"name: !!python/object/apply:os.system ['touch {marker}']\n"
    with pytest.raises(SpecError) as err:
        parse_sweep_text(text, source=SOURCE)
    assert not marker.exists()
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{SOURCE}: not valid YAML: could not determine a constructor for the tag")
    assert "loaded safely" in message


@pytest.mark.parametrize(
    "text,expected",
    [
        ("a: 2001-13-14", "fuzz.yaml: not valid YAML: ValueError: month must be in 1..12"),
        ("[" * 5000, "fuzz.yaml: not valid YAML: nested too deeply"),
        ({**VALID, "budgets": [4, 8192]}, "budgets: every n must be <= 4096, got 8192"),
        ({**VALID, "seeds": [2**64]}, "seeds: every seed must fit in 64 bits, got 18446744073709551616"),
        ({**VALID, "strategies": [{"name": "x\ny"}]}, "strategies[0]: Input tag 'x\\ny' found"),
        ({**VALID, "models": ["m"] * 2, "name": "n" * 5000}, "name: String should have at most 200 characters, got 'nnnn"),
    ],
)
def test_regressions_found_by_the_fuzzer(text, expected):
    """Each of these gave a traceback (or a multi-line message) before the fixes."""
    with pytest.raises(SpecError) as err:
        parse_sweep_text(text if isinstance(text, str) else dump(text), source=SOURCE)
    assert_error_lines(err.value)
    assert expected in str(err.value)


def test_spec_files_go_through_the_same_checks(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text("a: !!float nope\n", encoding="utf-8")
    with pytest.raises(SpecError, match=r"spec\.yaml: not valid YAML: ValueError"):
        read_sweep_file(str(path))
    path.write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(SpecError, match="is not UTF-8 text"):
        read_sweep_file(str(path))
    with pytest.raises(SpecError, match="is a directory; give a regular file"):
        read_sweep_file(str(tmp_path))
