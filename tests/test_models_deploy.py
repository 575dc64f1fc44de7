"""Deploy mode: BatchNorm folded, the position bias cached in eval mode, outputs unchanged."""

import pytest
import torch
from torch import nn

from radio_nas._config import ConfigError
from radio_nas.measure import cached_latency, measure_latency
from radio_nas.models import build_model, deploy_model, resolve_config
from radio_nas.search.space import LatencySettings

TINY = {"preset": "xt", "width": 16, "depths": (1, 1, 1, 1), "head_dim": 16, "cpb_hidden": 16}
V2_LIKE = {
    **TINY,
    "stem_width": 8,
    "pre_conv": "dense",
    "mra_merge": "half",
    "fusion": "neck",
    "output_dim": 32,
    "pretrained_window": 16,
}


def _trained_looking(spec: dict) -> nn.Module:
    """A model whose BatchNorms have non-trivial statistics and affine terms (folding must use them)."""
    torch.manual_seed(0)
    model = build_model(spec)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.2, 0.2)
    return model.eval()


@pytest.mark.parametrize("spec", [TINY, V2_LIKE, {**TINY, "mra_resample": "pool", "pre_conv": "depthwise"}])
def test_deployed_outputs_match_the_training_graph_in_eval(spec):
    model = _trained_looking(spec)
    x = torch.randn(2, 3, 128, 96)
    ref_summary, ref_features = model(x)  # autograd on: no cache, BatchNorm unfolded
    fast = deploy_model(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # the original is untouched
    with torch.inference_mode():
        for _ in range(2):  # second pass runs from the cached position bias
            summary, features = fast(x)
            assert torch.allclose(features, ref_features, atol=1e-5, rtol=1e-5)
            assert torch.allclose(summary, ref_summary, atol=1e-5, rtol=1e-5)
    with pytest.raises(RuntimeError, match="inference only"):
        fast.train()


def _biases(model: nn.Module) -> list:
    return [m.attn.pos_bias for m in model.modules() if getattr(getattr(m, "attn", None), "pos_bias", None)]


def test_position_bias_cache_is_used_in_eval_and_dropped_when_it_goes_stale():
    model = build_model(TINY).eval()
    bias = _biases(model)[0]
    with torch.no_grad():
        first = bias()
        assert bias() is first  # cached: the same tensor, no MLP run
    with torch.enable_grad():
        assert bias() is not first and bias().requires_grad  # autograd on: never the cache
    model.train()
    assert bias._cache is None
    model.eval()
    with torch.no_grad():
        cached = bias()
        bias.mlp[2].weight.mul_(2.0)  # an in-place update (an EMA, an optimizer step) moves the version
        updated = bias()
    assert not torch.equal(updated, cached)
    with torch.no_grad():
        stale = bias()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for k, value in state.items():
        if "pos_bias.mlp" in k:
            value.normal_()
    model.load_state_dict(state)
    assert bias._cache is None
    with torch.no_grad():
        assert not torch.equal(bias(), stale)
        assert torch.equal(bias(), bias._compute())


def test_window_change_rebuilds_the_cached_bias():
    model = build_model(TINY).eval()
    with torch.no_grad():
        model(torch.randn(1, 3, 224, 224))
        assert _biases(model)[0]().shape[-1] == 49
        model(torch.randn(1, 3, 128, 128))
        assert _biases(model)[0]().shape[-1] == 16


def test_latency_times_the_deployed_graph_and_keys_the_cache_by_it(tmp_path):
    model = build_model(TINY)
    r = measure_latency(model, (64, 64), warmup=0, runs=2)
    assert r.deploy and any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert not measure_latency(model, (64, 64), warmup=0, runs=2, deploy=False).deploy
    cfg = resolve_config(TINY)
    cached_latency(cfg, tmp_path, (64, 64), LatencySettings(runs=2, warmup=0))
    cached_latency(cfg, tmp_path, (64, 64), LatencySettings(runs=2, warmup=0, deploy=False))
    assert len(list(tmp_path.glob("latency-*.json"))) == 2


def test_latency_settings_deploy_reaches_the_cache_key(tmp_path, monkeypatch):
    from radio_nas.search.costs import latency_is_cached, measure_costs

    monkeypatch.setenv("RADIO_NAS_CACHE", str(tmp_path))
    cfg = resolve_config(TINY)
    deployed, training = LatencySettings(runs=1, warmup=0), LatencySettings(runs=1, warmup=0, deploy=False)
    assert deployed.deploy
    measure_costs(cfg, deployed, (64, 64), need_latency=True)
    assert latency_is_cached(cfg, deployed, (64, 64)) and not latency_is_cached(cfg, training, (64, 64))


def test_deployed_position_bias_is_frozen_and_follows_windows_and_weights():
    model = _trained_looking(V2_LIKE)
    fast = deploy_model(model)
    bias = _biases(fast)[0]
    assert bias.frozen is not None and bias() is bias.frozen
    assert torch.equal(bias.frozen, bias._compute().detach())
    with torch.no_grad():
        fast(torch.randn(1, 3, 128, 128))  # another size: another window, the buffer follows
    assert bias.window_size == 4 and bias().shape[-1] == 16
    assert torch.allclose(bias(), bias._compute().detach())
    state = {k: v.clone() for k, v in fast.state_dict().items()}
    for k, value in state.items():
        if "pos_bias.mlp" in k:
            value.normal_()
    fast.load_state_dict(state)  # loading weights recomputes the frozen bias from them
    assert torch.allclose(bias(), bias._compute().detach())
    assert "frozen" not in " ".join(fast.state_dict())  # never saved: it is derived


def test_deployed_graph_compiles_without_a_break():
    fast = deploy_model(_trained_looking(V2_LIKE))
    x = torch.randn(1, 3, 64, 64)
    fast.set_input_size(64, 64)
    with torch.inference_mode():
        want = fast(x)[1]
        torch._dynamo.reset()
        got = torch.compile(fast, backend="eager", fullgraph=True)(x)[1]  # fullgraph: a break raises
    torch._dynamo.reset()
    assert torch.allclose(got, want, atol=1e-6)


@pytest.mark.slow  # inductor compiles C++ kernels: ~20-60 s on 2 cores
def test_compiled_deploy_matches_the_training_graph_and_times_as_an_option():
    from radio_nas.models import compile_deployed

    model = _trained_looking(V2_LIKE)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref_summary, ref_features = model(x)
    torch._dynamo.reset()
    compiled = compile_deployed(model, x)
    with torch.inference_mode():
        summary, features = compiled(x)
    assert torch.allclose(features, ref_features, atol=1e-5, rtol=1e-5)
    assert torch.allclose(summary, ref_summary, atol=1e-5, rtol=1e-5)
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # the original is untouched
    torch._dynamo.reset()
    r = measure_latency(model, (64, 64), batch_size=2, warmup=0, runs=2, compile=True)
    assert r.compiled and r.deploy and r.compile_s is not None and r.compile_s > 0 and r.peak_memory_mb is None
    with pytest.raises(ConfigError, match="--compile"):
        measure_latency(model, (64, 64), runs=1, deploy=False, compile=True)
    torch._dynamo.reset()
