"""The GPU path against the CPU path, on the same weights and batches.

On a GPU the encoder runs as one cuDNN call over the packed batch and the Luong decoder without input
feeding as one cuDNN call over the target; on the CPU both are written out (`padded_recurrence`,
`run_cpu_rnn`). In fp32 the two must give the same logits, attention and gradients, and the same
search results. Skipped without a CUDA device (CI has none); `scripts/gpu_check.sh` runs this file first
on the GPU machine.
"""

import copy

import pytest
import torch
from test_model import VARIANTS, VOCAB, batch, model_cfg

from nmt.inference.search import beam_search, greedy_search
from nmt.models.seq2seq import build_model
from nmt.training.ema import WeightAverage

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
CUDA = torch.device("cuda")


@pytest.fixture(autouse=True)
def full_fp32():
    """TF32 off, so that cuDNN and cuBLAS compute in full fp32 like the CPU."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def cpu_and_cuda_models(**overrides):
    torch.manual_seed(1)
    cpu = build_model(model_cfg(**overrides), VOCAB, VOCAB, shared_vocab=True)
    return cpu, copy.deepcopy(cpu).to(CUDA)


def loss_and_grads(model, device):
    src, lengths, tgt_in = batch()
    logits, weights = model(src.to(device), lengths.to(device), tgt_in.to(device))  # (B, T, V), (B, T, S)
    loss = (logits.log_softmax(-1) * torch.linspace(0.5, 1.5, VOCAB, device=device)).sum()
    loss.backward()
    return logits.detach().cpu(), weights.detach().cpu(), {n: p.grad.cpu() for n, p in model.named_parameters()}


@pytest.mark.parametrize(("attention", "style", "feeding", "rnn"), VARIANTS)
def test_cuda_forward_and_gradients_equal_the_cpu_ones(attention, style, feeding, rnn):
    cpu, cuda = cpu_and_cuda_models(attention={"name": attention}, decoder_style=style, input_feeding=feeding,
                                    rnn_type=rnn, dec_layers=2)
    logits_cpu, weights_cpu, grads_cpu = loss_and_grads(cpu, torch.device("cpu"))
    logits_gpu, weights_gpu, grads_gpu = loss_and_grads(cuda, CUDA)
    torch.testing.assert_close(logits_gpu, logits_cpu, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(weights_gpu, weights_cpu, atol=1e-5, rtol=1e-4)
    assert grads_gpu.keys() == grads_cpu.keys()
    for name, grad in grads_cpu.items():
        torch.testing.assert_close(grads_gpu[name], grad, atol=1e-4, rtol=1e-3, msg=name)


@pytest.mark.parametrize("style, feeding", [("bahdanau", True), ("luong", True), ("luong", False)])
def test_cuda_greedy_and_beam_search_return_the_cpu_hypotheses(style, feeding):
    cpu, cuda = cpu_and_cuda_models(decoder_style=style, input_feeding=feeding)
    src, lengths, _ = batch((9, 6, 6, 3, 1))
    for search in (greedy_search, beam_search):
        on_cpu = search(cpu.eval(), src, lengths)
        on_gpu = search(cuda.eval(), src.to(CUDA), lengths.to(CUDA))
        assert [[h.tokens for h in hyps] for hyps in on_gpu] == [[h.tokens for h in hyps] for hyps in on_cpu]
        for hyps_gpu, hyps_cpu in zip(on_gpu, on_cpu, strict=True):
            assert hyps_gpu[0].score == pytest.approx(hyps_cpu[0].score, abs=1e-4)


def test_cuda_bf16_autocast_loss_is_close_to_fp32():
    _, cuda = cpu_and_cuda_models(decoder_style="luong", input_feeding=True)
    src, lengths, tgt_in = (t.to(CUDA) for t in batch())
    with torch.no_grad():
        fp32, _ = cuda(src, lengths, tgt_in)  # (B, T, V)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            bf16, _ = cuda(src, lengths, tgt_in)
    assert bf16.dtype == torch.bfloat16 and torch.isfinite(bf16.float()).all()
    torch.testing.assert_close(bf16.float().log_softmax(-1), fp32.log_softmax(-1), atol=0.05, rtol=0.05)



@pytest.mark.parametrize("feeding", [True, False])
def test_cuda_rnns_run_in_fp32_under_bf16_autocast(feeding):
    """Autocast would run cuDNN RNNs in fp16 (its rule for them ignores the bf16 asked for), and bf16
    training has no loss scaler: the encoder's and the Luong decoder's cuDNN calls must stay in fp32."""
    _, cuda = cpu_and_cuda_models(decoder_style="luong", input_feeding=feeding)
    seen = {}

    def record_dtype(name):
        def hook(module, args, out):  # returns None: the output is left as it is
            outputs = out[0].data if isinstance(out[0], torch.nn.utils.rnn.PackedSequence) else out[0]
            seen[name] = outputs.dtype
        return hook

    for name, module in cuda.named_modules():
        if isinstance(module, torch.nn.RNNBase):
            module.register_forward_hook(record_dtype(name))
    src, lengths, tgt_in = (t.to(CUDA) for t in batch())
    with torch.autocast("cuda", dtype=torch.bfloat16):
        logits, _ = cuda(src, lengths, tgt_in)  # (B, T, V)
    logits.float().log_softmax(-1).sum().backward()
    assert "encoder.rnn" in seen and (feeding or "decoder.rnn" in seen)
    assert set(seen.values()) == {torch.float32}, seen
    assert all(torch.isfinite(p.grad).all() for p in cuda.parameters() if p.grad is not None)

def test_cuda_moving_average_of_the_weights_equals_the_cpu_one():
    """trainer.ema_decay: the fused multi-tensor update on the GPU follows the same recurrence."""
    cpu, cuda = cpu_and_cuda_models(decoder_style="luong", input_feeding=True)
    averages = WeightAverage(cpu, 0.9), WeightAverage(cuda, 0.9)
    for n in range(5):
        step = {name: torch.randn_like(p) for name, p in cpu.named_parameters()}
        with torch.no_grad():
            for model in (cpu, cuda):
                for name, p in model.named_parameters():
                    p.add_(step[name].to(p.device))
        for model, average in zip((cpu, cuda), averages, strict=True):
            average.update(model, n)
    for name, value in averages[0].average.items():
        torch.testing.assert_close(averages[1].average[name].cpu(), value, msg=name)
