"""Fused (torch.compile) hot spots equal the eager ones, the switch is scoped, and the trainer uses it."""

import os
import platform

import pytest
import torch
import torch.nn.functional as F

from nmt.errors import ConfigError
from nmt.models import fusion as fusion_module
from nmt.models.additive_scores import additive_scores
from nmt.models.fusion import compiler_available, fusable, fusion, fusion_enabled, fusion_wanted
from nmt.models.recurrence import gru_update, lstm_update
from nmt.training.loss import label_smoothed_nll
from nmt.training.runtime import keep_freed_memory


@pytest.fixture(scope="module")
def compiler():
    if not compiler_available():
        if os.environ.get("CI") == "true":
            pytest.fail("no C++ compiler: CI must test the fused kernels")
        pytest.skip("no C++ compiler for torch.compile")


def eager_and_fused(fn, *inputs):
    """fn's outputs and the gradients of their sum w.r.t. the inputs, eagerly and fused."""
    results = []
    for enabled in (False, True):
        leaves = [x.detach().clone().requires_grad_(x.is_floating_point()) for x in inputs]
        with fusion(enabled):
            outputs = fn(*leaves)
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        total = sum((o.float() * torch.linspace(0.5, 1.5, o.numel()).view_as(o)).sum() for o in outputs)
        grads = torch.autograd.grad(total, [x for x in leaves if x.requires_grad])
        results.append(([o.detach() for o in outputs], grads))
    return results


def assert_close(eager, fused, tol):
    for a, b in zip(eager[0] + list(eager[1]), fused[0] + list(fused[1]), strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype
        torch.testing.assert_close(b, a, atol=tol, rtol=tol)


@pytest.mark.parametrize("batch", [3, 11])  # two shapes: one compiled kernel serves both (dynamic)
def test_fused_gru_and_lstm_updates_equal_eager_values_and_gradients(compiler, batch):
    torch.manual_seed(batch)
    gates_in, gates_h, hidden = torch.randn(batch, 24), torch.randn(batch, 24), torch.randn(batch, 8)
    eager, fused = eager_and_fused(gru_update, gates_in, gates_h, hidden)
    assert_close(eager, fused, 1e-5)
    eager, fused = eager_and_fused(lstm_update, torch.randn(batch, 32), torch.randn(batch, 8))
    assert_close(eager, fused, 1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fused_additive_scores_equal_eager_values_and_gradients(compiler, dtype):
    """The compiled form (tanh written through a sigmoid) against the eager tanh."""
    torch.manual_seed(0)
    query, keys, v = torch.randn(4, 1, 16), torch.randn(4, 7, 16), torch.randn(1, 16)
    eager, fused = eager_and_fused(lambda q, k, w: additive_scores(q.to(dtype), k.to(dtype), w), query, keys, v)
    assert_close(eager, fused, 1e-5 if dtype == torch.float32 else 5e-2)
    if dtype == torch.float32:
        expected = (torch.tanh(query[:, :, None] + keys[:, None]) @ v[0])  # (B, 1, S) by the formula
        torch.testing.assert_close(eager[0][0], expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("overwrite", [False, True])  # the gradient in a new buffer, or over the logits
def test_fused_loss_equals_eager_and_cross_entropy(compiler, dtype, overwrite):
    torch.manual_seed(1)
    logits, target = 3 * torch.randn(300, 50), torch.randint(0, 50, (300,))  # two slices on a CPU
    eager, fused = eager_and_fused(lambda x, t: label_smoothed_nll(x.to(dtype) * 1, t, 0.1, overwrite),
                                   logits, target)
    ignoring = eager_and_fused(lambda x, t: label_smoothed_nll(x.to(dtype) * 1, t, 0.1, overwrite, ignore_index=3),
                               logits, target)
    assert_close(*ignoring, 1e-4 if dtype == torch.float32 else 2e-2)
    assert_close(eager, fused, 1e-4 if dtype == torch.float32 else 2e-2)
    reference = F.cross_entropy(logits.to(dtype).double(), target, label_smoothing=0.1, reduction="sum")
    assert fused[0][0].item() == pytest.approx(reference.item(), rel=1e-5)


def test_fusion_is_scoped_and_fusable_runs_as_written_by_default(monkeypatch):
    calls = []
    monkeypatch.setattr(torch, "compile", lambda fn, dynamic: calls.append(dynamic) or fn)
    double = fusable(lambda x: 2 * x)
    assert double(torch.ones(2)).tolist() == [2, 2] and calls == []
    with fusion(True):
        double(torch.ones(2))
        with fusion(False):
            assert not fusion_enabled()
        assert fusion_enabled()
    assert not fusion_enabled() and calls == [True]  # compiled once, with dynamic shapes


def test_a_fused_function_compiles_every_variant_it_meets_past_torchs_recompile_limit(compiler):
    """Training meets each fused function in several variants (gradients or not, autocast or not, 2-D or
    3-D states); past torch's limit the next variant would run eagerly, with a warning mid-run."""
    from torch._dynamo.utils import counters

    config = torch._dynamo.config
    name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
    # torch's own patch, not monkeypatch: on torch 2.11 monkeypatch's undo leaves the aliased
    # recompile_limit unreadable, and every later torch.compile in the process fails on it.
    with config.patch(**{name: 2}):  # a low limit, so that three variants would pass it
        scaled_tanh = fusable(lambda x: torch.tanh(x) * 2)
        graphs = counters["stats"]["unique_graphs"]
        with fusion(True):
            for rank in (1, 2, 3):  # a tensor of another rank is another variant to compile
                x = torch.randn(*([3] * rank))
                torch.testing.assert_close(scaled_tanh(x), torch.tanh(x) * 2)
        assert counters["stats"]["unique_graphs"] - graphs == 3  # all three compiled, none left to eager
        assert getattr(config, name) >= fusion_module.RECOMPILE_LIMIT
    assert getattr(config, name) >= 0  # still readable after the patch is undone


def test_compile_setting_auto_true_false(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert fusion_wanted(False, cpu) is False
    assert fusion_wanted("auto", cuda) is False  # not measured on a GPU yet
    monkeypatch.setattr(fusion_module, "compile_failure", lambda device_type: None)
    assert fusion_wanted("auto", cpu) is True and fusion_wanted(True, cpu) is True
    monkeypatch.setattr(fusion_module, "compile_failure", lambda device_type: "no C++ compiler")
    assert fusion_wanted("auto", cpu) is False  # auto trains on without it
    with pytest.raises(ConfigError, match=r"trainer.compile=true, but torch.compile does not work here "
                                          r"\(no C\+\+ compiler\); set trainer.compile=false"):
        fusion_wanted(True, cpu)


def test_a_compiler_that_fails_is_reported_not_raised(monkeypatch):
    def broken(fn, dynamic):
        raise RuntimeError("C++ compile error\nlong log")

    monkeypatch.setattr(torch, "compile", broken)
    monkeypatch.setattr(fusion_module, "compiler_available", lambda: True)
    fusion_module.compile_failure.cache_clear()
    try:
        assert fusion_module.compile_failure("cpu") == "RuntimeError: C++ compile error"
        monkeypatch.setattr(fusion_module, "compiler_available", lambda: False)
        fusion_module.compile_failure.cache_clear()
        assert fusion_module.compile_failure("cpu") == "no C++ compiler (g++ or $CXX) for its CPU kernels"
    finally:
        fusion_module.compile_failure.cache_clear()


def test_torch_compile_works_on_this_machine(compiler):
    assert fusion_module.compile_failure("cpu") is None


def test_freed_memory_is_kept_on_glibc_unless_the_user_tunes_malloc(monkeypatch):
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not a glibc system")
    for key in [k for k in os.environ if k.startswith("MALLOC_")]:
        monkeypatch.delenv(key)
    assert keep_freed_memory() is True
    monkeypatch.setenv("MALLOC_ARENA_MAX", "2")
    assert keep_freed_memory() is False

