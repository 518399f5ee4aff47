"""``vsm bench`` and ``vsm bench --check`` on CPU (conftest: Triton kernels in the interpreter).

The acceptance check must pass on the real ops, write valid JSON and markdown, and fail (exit 1,
naming the op) when vsm and the reference disagree. Timings are never asserted:
``vsm.bench.timing.time_ms`` is replaced by one call of the timed function, so the harness runs
end to end in seconds.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from vsm import bench, cli, reference
from vsm._errors import UsageError
from vsm.bench import check


@pytest.fixture
def fake_timer(monkeypatch):
    """Each timing calls the function once (so it must run) and reports 1 ms."""

    def once(f, device, min_run_time):
        f()
        return 1.0

    monkeypatch.setattr(bench.timing, "time_ms", once)


def _report(out):
    data = json.loads((out / "bench.json").read_text())  # strict JSON: no NaN/Infinity
    return data, (out / "bench.md").read_text()


def _run_check(out, *extra: str) -> int:
    """``vsm bench --check`` at the tiny shapes on CPU without the compile parts, into ``out``."""
    return bench.main(
        ["--check", "--tiny", "--device", "cpu", "--no-compile", *extra, "--out", str(out)]
    )


def test_check_passes_on_cpu_and_writes_json_and_markdown(tmp_path, fake_timer, capsys):
    """Every op and objective against the reference (the compile parts are tested below, on
    their own, to keep this file fast)."""
    rc = _run_check(tmp_path)
    out = capsys.readouterr().out
    assert rc == 0, out
    data, md = _report(tmp_path)
    assert data["status"] == "passed"
    checks = data["checks"]
    assert checks and all(c["ok"] for c in checks)
    names = {c["check"] for c in checks}
    assert {
        "posterior_fd",
        "gaussian_terms",
        "hutchinson_trace",
        "hutchinson_probes",
        "objectives.m1",
        "objectives.m2",
        "objectives.m3",
        "objectives.fae",
        "objectives.posterior_fd_loss",
        "objectives.fae_loss",
    } <= names
    assert {c["dtype"] for c in checks} == {"float32", "float64"}
    assert any(c["quantity"] == "grad logvar" for c in checks)
    assert set(data["tolerances"]) == {"float32", "float64"}
    # the table: 3 ops × (fwd, fwd+bwd) at the current thread count
    rows = data["rows"]
    assert len(rows) == 6 and {r["pass"] for r in rows} == {"fwd", "fwd+bwd"}
    assert all(r["vsm_ms"] == 1.0 and r["speedup_ref"] == 1.0 for r in rows)
    assert md.startswith("# vsm bench --check: PASSED")
    assert "| op | shape | pass | threads | reference ms | compile ms | compile-time s |" in md
    assert "vsm bench --check: PASSED" in out


def test_compiled_vae_step_matches_eager():
    results = check.check_compile(torch.device("cpu"), torch.float32, "aot_eager", small=True)
    assert results[0].quantity == "loss"
    assert len(results) > 5 and all(r.ok for r in results), [r for r in results if not r.ok]


def test_compile_column_and_compile_time(tmp_path, fake_timer):
    rc = bench.main(
        [
            "--tiny",
            "--device",
            "cpu",
            "--op",
            "posterior_fd",
            "--compile-backend",
            "aot_eager",
            "--out",
            str(tmp_path),
        ]
    )
    assert rc == 0
    data, _ = _report(tmp_path)
    rows = data["rows"]
    assert [r["pass"] for r in rows] == ["fwd", "fwd+bwd"]
    assert all(r["compile_ms"] == 1.0 and r["speedup_compile"] == 1.0 for r in rows)
    # the fwd+bwd row's compile time includes the forward graph's
    assert 0 < rows[0]["compile_s"] <= rows[1]["compile_s"]


def test_check_fails_when_vsm_and_reference_disagree(tmp_path, fake_timer, capsys, monkeypatch):
    """A 0.1 % error in one output of one op must fail the run and be named. The reference side
    is perturbed: if the vsm side also went through the reference, both would agree and the
    check would (wrongly) pass, so this also proves the check compares two different paths."""
    real = reference.gaussian_terms

    def broken(x, x_mean, log_sigma2):
        t = real(x, x_mean, log_sigma2)
        return t._replace(mean_sq=t.mean_sq * 1.001)

    monkeypatch.setattr(reference, "gaussian_terms", broken)
    rc = _run_check(tmp_path, "--op", "gaussian_terms")
    out = capsys.readouterr().out
    assert rc == 1
    assert "MISMATCH gaussian_terms [auto, float32" in out
    assert "forward mean_sq" in out
    data, md = _report(tmp_path)
    assert data["status"] == "failed"
    bad = [c for c in data["checks"] if not c["ok"]]
    assert bad and all(
        c["check"]
        in (
            "gaussian_terms",
            "objectives.m2",
            "objectives.m3",
            "objectives.fae",
            "objectives.fae_loss",
        )
        for c in bad
    )
    assert md.startswith("# vsm bench --check: FAILED")
    assert "Failures:" in md


def test_check_reports_an_op_that_raises(tmp_path, fake_timer, capsys, monkeypatch):
    import vsm

    def crash(*args, **kwargs):
        raise RuntimeError("kernel exploded")

    monkeypatch.setattr(vsm, "posterior_fd", crash)
    rc = _run_check(tmp_path, "--op", "posterior_fd")
    out = capsys.readouterr().out
    assert rc == 1
    assert "MISMATCH posterior_fd" in out and "kernel exploded" in out
    assert "MISMATCH benchmark case failed: posterior_fd" in out


def test_table_at_two_thread_counts_with_training_steps(tmp_path, fake_timer, capsys):
    threads = torch.get_num_threads()
    rc = cli.main(
        [
            "bench",
            "--tiny",
            "--device",
            "cpu",
            "--threads",
            "1,2",
            "--no-compile",
            "--train-steps",
            "--out",
            str(tmp_path),
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert torch.get_num_threads() == threads  # restored
    data, md = _report(tmp_path)
    rows = data["rows"]
    assert len(rows) == 12 and sorted({r["threads"] for r in rows}) == [1, 2]
    assert all(r["compile_ms"] is None and r["speedup_compile"] is None for r in rows)
    assert all(r["limit_gbs"] > 0 and r["gbs"] > 0 for r in rows)  # CPU copy limit measured
    assert set(data["limit_gbs_by_threads"]) == {"1", "2"}
    steps = data["train_steps"]
    assert len(steps) == 8 and {s["threads"] for s in steps} == {1, 2}
    assert any("MLP VAE D=784" in s["model"] for s in steps)
    assert any("conv VAE" in s["model"] for s in steps)
    assert sum("2-D MLP" in s["model"] for s in steps) == 4
    assert all(s["mflop"] > 0 and s["fast_ms"] > 0 for s in steps)
    assert "| training step | objective |" in md and "| training step | objective |" in out
    # under the interpreter the CPU vsm column never times Triton's interpreter
    assert data["vsm_backend"] in ("reference", "rust")
    assert "Triton-interpreter timings are meaningless" in out


def test_timing_backend_avoids_the_interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    want = "rust" if bench.has_backend("rust") else "reference"
    assert bench.timing_backend(torch.device("cpu")) == want
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    assert bench.timing_backend(torch.device("cpu")) == "auto"


@pytest.mark.parametrize(
    ("name", "gbs"),
    [
        ("NVIDIA H200", 4800.0),
        ("NVIDIA H100 80GB HBM3", 3350.0),
        ("NVIDIA H100 PCIe", 2000.0),
        ("NVIDIA H100 NVL", 3900.0),
        ("NVIDIA A100-SXM4-80GB", 2039.0),
        ("NVIDIA A100-SXM4-40GB", 1555.0),
        ("NVIDIA A100-PCIE-80GB", 1935.0),
        ("Tesla T4", None),
    ],
)
def test_bandwidth_by_device_name(name, gbs):
    assert bench.bandwidth_from_name(name) == gbs


def test_compare_tolerances_and_special_values():
    f32, f64 = torch.float32, torch.float64
    w = torch.tensor([1.0, -2.0, 1e-8, 3.0], dtype=f64)
    ok, _, ratio, _ = check.compare(w * (1 + 1e-11), w, f64)
    assert ok and ratio < 1
    ok, _, ratio, msg = check.compare(w * (1 + 1e-6), w, f64)
    assert not ok and ratio > 1 and "tolerance" in msg
    # a tiny entry is judged against atol·max|want| (cancellation in a sum), not its own size
    got = w.clone()
    got[2] = 2e-8
    assert check.compare(got.float(), w.float(), f32)[0]
    nan = torch.tensor([1.0, math.nan, math.inf])
    assert check.compare(nan.clone(), nan, f32)[0]
    assert not check.compare(torch.tensor([1.0, 0.0, math.inf]), nan, f32)[0]
    assert not check.compare(torch.tensor([1.0, math.nan, -math.inf]), nan, f32)[0]
    assert not check.compare(torch.zeros(2), torch.zeros(3), f32)[0]
    assert check.compare(None, None, f32)[0] and not check.compare(torch.zeros(1), None, f32)[0]


def test_has_backend():
    assert bench.has_backend("reference") and bench.has_backend("auto")
    assert not bench.has_backend("no-such-backend")


def test_threads_option_rejects_bad_values():
    with pytest.raises(UsageError, match="argument --threads: expected positive ints"):
        bench.build_parser().parse_args(["--threads", "0,2"])
    assert bench.parse_threads("1,2") == [1, 2]


def test_spent_time_budget_skips_the_compile_column(tmp_path, fake_timer):
    args = bench.build_parser().parse_args(["--tiny", "--compile-backend", "aot_eager"])
    rows, header = bench.run_table(
        args, torch.device("cpu"), ("posterior_fd",), min_run_time=0.01, deadline=0.0
    )
    t = torch.get_num_threads()
    assert header["compile_skipped"] == [f"posterior_fd N=2 B=3 L=5 threads {t}"]
    assert all(r.compile_ms is None for r in rows)


def test_targets_lines():
    def row(shape, pas, ref, comp, vsm, paper=False, large=False, gbs=None, limit=None):
        return bench.Row(
            "posterior_fd",
            shape,
            pas,
            1,
            ref,
            comp,
            1.0,
            vsm,
            gbs=gbs,
            limit_gbs=limit,
            paper=paper,
            large=large,
        )

    lines = check.targets(
        [
            row("paper", "fwd+bwd", 3.0, 1.0, 0.5, paper=True),  # 6x eager, 2x compile
            row("paper", "fwd", 3.0, 1.0, 0.5, paper=True),  # fwd rows have no target
            row("paper2", "fwd+bwd", 1.0, 0.1, 0.5, paper=True),  # 2x eager, 0.2x compile
            row("large", "fwd+bwd", 1.0, 1.0, 1.0, large=True, gbs=2000.0, limit=3350.0),
        ]
    )
    assert len(lines) == 3
    assert "6.00x eager (met" in lines[0] and "2.00x compile (met" in lines[0]
    assert "2.00x eager (NOT met" in lines[1] and "0.20x compile (NOT met" in lines[1]
    assert "60% of 3350 GB/s (NOT met" in lines[2]
