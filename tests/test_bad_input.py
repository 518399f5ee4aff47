"""Bad input to every public function of API.md: the function × kind-of-bad-input matrix.

The rows live next to each function's other tests, in the ``# ---- bad input`` block at the end of
its test module (format: ``tests/_cases.py``), and run there:

- ``BAD_INPUT``: valid rows (``OK``) and bad rows (``Err(exc, arg)``), one argument made bad per
  row, of a kind in ``KINDS``: wrong type, dtype, shape, empty batch, device (the ``meta`` device
  stands in for a second device), non-finite values where they cannot mean anything, bad options;
- ``NONFINITE_ROWS``: torch-level functions do not scan data for NaN/inf; a non-finite datum stays
  in its own row of the result instead;
- ``LAYOUT_ROWS`` / ``EXPANDED_ROWS``: non-contiguous (strided, transposed) and expanded (stride-0)
  inputs are handled: the result equals the result for the contiguous copy.

This module collects those tables into the matrix (``API`` below says which rows belong to which
function). ``test_matrix_is_complete`` requires each cell to be tested or to state why it does not
apply, and every function to have a valid row. ``python tests/test_bad_input.py`` prints the
matrix (Markdown).
"""

from __future__ import annotations

import test_gaussian_terms
import test_hutchinson
import test_importance
import test_objectives
import test_posterior_fd
import test_score
import test_toy
from _cases import DEVICE, DTYPE, KINDS, NONFINITE, OPTION, SHAPE, TYPE, VALID

# The test modules whose ``# ---- bad input`` blocks feed the matrix.
MODULES = (
    test_posterior_fd,
    test_gaussian_terms,
    test_hutchinson,
    test_objectives,
    test_score,
    test_importance,
    test_toy,
)


def _merged(table):
    """One module table (e.g. ``LAYOUT_ROWS``) merged over MODULES; a key may appear once."""
    out = {}
    for m in MODULES:
        for key, fn in getattr(m, table, {}).items():
            assert key not in out, f"{table}[{key!r}] is defined twice"
            out[key] = fn
    return out


CASES = [row for m in MODULES for row in m.BAD_INPUT]
NONFINITE_ROWS = _merged("NONFINITE_ROWS")
LAYOUT_ROWS = _merged("LAYOUT_ROWS")
EXPANDED_ROWS = _merged("EXPANDED_ROWS")

# Each table and the test a module binds to run it (``tests/_cases.py``'s factories).
RUNNERS = {
    "BAD_INPUT": "test_bad_input_raises_naming_argument",
    "NONFINITE_ROWS": "test_non_finite_datum_stays_in_its_row",
    "LAYOUT_ROWS": "test_non_contiguous_inputs_give_the_contiguous_result",
    "EXPANDED_ROWS": "test_expanded_inputs_give_the_contiguous_result",
}

# API function -> (row id prefix, NONFINITE_ROWS / LAYOUT_ROWS key, EXPANDED_ROWS names).
API = {
    "vsm.posterior_fd": ("pfd", "posterior_fd", ("pfd", "pfd_z")),
    "vsm.gaussian_terms": ("gt", "gaussian_terms", ("gt", "gt_x")),
    "vsm.hutchinson_trace": ("hutch", "hutchinson_trace", ("hutch",)),
    "objectives.elbo": ("elbo", "elbo", ("elbo",)),
    "objectives.m1": ("m1", "m1", ("m1",)),
    "objectives.m2": ("m2", "m2", ("m2",)),
    "objectives.m3": ("m3", "m3", ("m3",)),
    "objectives.fae": ("fae", "fae", ("fae",)),
    "objectives.fae_loss": ("faeloss", "fae_loss", ("fae_loss",)),
    "objectives.posterior_fd_loss": ("pfdl", "posterior_fd_loss", ("pfdl",)),
    "score.exact_sm": ("exact", "exact_sm", ("exact",)),
    "score.sliced_sm": ("sliced", "sliced_sm", ("sliced",)),
    "score.dsm": ("dsm", "dsm", ("dsm",)),
    "score.multiscale_dsm": ("mdsm", "multiscale_dsm", ("mdsm",)),
    "score.annealed_langevin": ("lang", "annealed_langevin", ("lang",)),
    "vsm.is_log_evidence": ("isle", "is_log_evidence", ("isle", "isle_np")),
    "ISAccumulator(x, log_sigma2)": ("isacc", "ISAccumulator", ("isacc", "isacc_torch")),
    "ISAccumulator.add": ("isadd", "ISAccumulator", ("isacc", "isacc_torch")),
    "ISAccumulator.result": ("isres", "ISAccumulator", ("isacc", "isacc_torch")),
    "toy.posterior": ("toy", "toy.posterior", ("toy_x",)),
    "toy.grid_posterior": ("grid", "toy.grid_posterior", ("grid",)),
    "Posterior.kl_from": ("kl", "kl_from", ("div",)),
    "Posterior.fd_from": ("fd", "fd_from", ("div",)),
}
NONCONTIG, EXPANDED = "non-contig", "expanded"
_NO_OPTIONS = "n/a: no options"
_NO_ARGS = "n/a: no arguments"
NOT_APPLICABLE = {
    **{
        (f, OPTION): _NO_OPTIONS
        for f in (
            "vsm.posterior_fd",
            "vsm.gaussian_terms",
            "objectives.elbo",
            "objectives.m1",
            "objectives.m2",
            "objectives.m3",
            "objectives.fae",
            "score.exact_sm",
            "vsm.is_log_evidence",
            "ISAccumulator.add",
        )
    },
    **{
        ("ISAccumulator.result", k): _NO_ARGS
        for k in (TYPE, DTYPE, SHAPE, DEVICE, NONFINITE, OPTION)
    },
}


def _api_of_case(case_id):
    prefix = case_id.split("-")[0]
    return [f for f, (p, _, _) in API.items() if p == prefix]


def matrix():
    """{function: {kind: cell}}: exception names of the BAD_INPUT rows, 'NaN->row' for the
    propagation table, 'same' for the layout tables, else the NOT_APPLICABLE reason."""
    cells = {f: {} for f in API}
    for case_id, kind, _, _, expected in CASES:
        if kind == VALID:
            continue
        for f in _api_of_case(case_id):
            cells[f].setdefault(kind, set()).add(expected.exc.__name__)
    for f, (_, key, exp) in API.items():
        if key in NONFINITE_ROWS:
            cells[f].setdefault(NONFINITE, set()).add("NaN->row")
        if any(k.split("-")[0] == key for k in LAYOUT_ROWS):
            cells[f][NONCONTIG] = {"same"}
        if set(EXPANDED_ROWS).intersection(exp):
            cells[f][EXPANDED] = {"same"}
    out = {}
    for f, row in cells.items():
        out[f] = {
            k: "/".join(sorted(row[k])) if k in row else NOT_APPLICABLE.get((f, k), "MISSING")
            for k in (*KINDS, NONCONTIG, EXPANDED)
        }
    return out


def format_matrix():
    """The matrix as a Markdown table (``python tests/test_bad_input.py``)."""
    cols = (*KINDS, NONCONTIG, EXPANDED)
    abbrev = {"TypeError": "TE", "ValueError": "VE"}
    lines = ["| function | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for f, row in matrix().items():
        vals = [row[c] for c in cols]
        for long, short in abbrev.items():
            vals = [v.replace(long, short) for v in vals]
        lines.append(f"| {f} | " + " | ".join(vals) + " |")
    return "\n".join(lines)


def test_matrix_is_complete():
    """Every row belongs to an API function, every module runs its tables, every function has a
    valid row, and every function × kind cell is tested or has a stated reason why it does not
    apply (and not both)."""
    for case_id, kind, _, _, expected in CASES:
        assert kind in (*KINDS, VALID), case_id
        assert (kind == VALID) == (expected is None), f"{case_id}: only VALID rows expect OK"
        assert _api_of_case(case_id), f"{case_id}: unknown function prefix"
    for m in MODULES:
        for table, test in RUNNERS.items():
            if hasattr(m, table):
                runner = getattr(m, test, None)
                assert getattr(runner, "table", None) is getattr(m, table), (
                    f"{m.__name__}.{test} does not run its {table}"
                )
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids)), "duplicate row ids"
    valid = {f for c in CASES if c[1] == VALID for f in _api_of_case(c[0])}
    assert valid == set(API), f"functions without a valid row: {set(API) - valid}"
    for f, (_, _, exp) in API.items():
        assert set(exp) <= set(EXPANDED_ROWS), f"{f}: unknown EXPANDED_ROWS names {exp}"
    missing = [(f, k) for f, row in matrix().items() for k, v in row.items() if v == "MISSING"]
    assert not missing, f"untested cells without a reason: {missing}"
    for f, row in matrix().items():
        for k, v in row.items():
            if (f, k) in NOT_APPLICABLE:
                assert v == NOT_APPLICABLE[(f, k)], f"{f} × {k} is tested: drop its n/a reason"


if __name__ == "__main__":
    print(format_matrix())
