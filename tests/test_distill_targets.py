"""Teacher-target standardisation (PHI-S, per-channel), its statistics and the constant-start adaptor."""

from pathlib import Path

import numpy as np
import pytest
import torch

from radio_nas.distill.adaptors import TeacherAdaptor, TermStart
from radio_nas.distill.cache import CacheEntry
from radio_nas.distill.losses import mse_loss
from radio_nas.distill.targets import STATS_FILE, TargetTransform, entry_stats, fit_term, hadamard

ROOT = Path(__file__).resolve().parents[1]


def _features(n=40, c=16, hw=(3, 4), rank=None, seed=0):
    rng = np.random.default_rng(seed)
    if rank is None:
        x = rng.standard_normal((n, c, *hw)) * rng.uniform(0.1, 5.0, (1, c, 1, 1))
    else:  # every token lies in a rank-`rank` subspace of the channels
        basis = rng.standard_normal((rank, c))
        x = np.einsum("nrhw,rc->nchw", rng.standard_normal((n, rank, *hw)), basis)
    return (x + rng.standard_normal((1, c, *hw)) * 3).astype(np.float32)  # a per-position mean


@pytest.mark.parametrize("mode", ["phi-s", "channel"])
@pytest.mark.parametrize("rank", [None, 3])
def test_standardisation_round_trips(mode, rank):
    x = _features(rank=rank)
    tf = TargetTransform(fit_term(x), mode)
    t = torch.from_numpy(x)
    back = tf.inverse(tf(t))
    assert torch.allclose(back, t, atol=1e-5 * float(t.abs().max()))
    s = x.mean((2, 3))  # a (N, D) summary
    tfs = TargetTransform(fit_term(s), mode)
    ts = torch.from_numpy(s)
    assert torch.allclose(tfs.inverse(tfs(ts)), ts, atol=1e-5 * float(ts.abs().max()))


def test_phi_s_gives_every_dimension_unit_variance_and_channel_mode_unit_std():
    x = _features(n=200)
    for mode in ("phi-s", "channel"):
        z = TargetTransform(fit_term(x), mode)(torch.from_numpy(x)).double()
        tokens = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
        assert torch.allclose(tokens.mean(0), torch.zeros(z.shape[1], dtype=torch.double), atol=1e-4)
        var = tokens.var(0)
        assert torch.allclose(var, torch.ones_like(var), atol=2e-3), (mode, var)


def test_fit_term_matches_an_independent_covariance():
    x = _features(n=30, c=8)
    st = fit_term(x, chunk=7)
    np.testing.assert_allclose(st.mean, x.mean(0), rtol=1e-5, atol=1e-5)
    tokens = (x - x.mean(0)).transpose(0, 2, 3, 1).reshape(-1, 8)
    cov = np.cov(tokens.T.astype(np.float64))
    np.testing.assert_allclose(st.eigvecs @ np.diag(st.eigvals) @ st.eigvecs.T, cov, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(st.std, np.sqrt(np.diag(cov)), rtol=1e-4)


def test_hadamard_is_orthogonal_with_equal_magnitudes():
    for d in (1, 2, 64):
        h = hadamard(d)
        np.testing.assert_allclose(h @ h.T, np.eye(d), atol=1e-12)
        np.testing.assert_allclose(np.abs(h), d**-0.5)
    h = hadamard(12)  # no power of two: a fixed rotation, still orthogonal
    np.testing.assert_allclose(h @ h.T, np.eye(12), atol=1e-10)
    np.testing.assert_array_equal(h, hadamard(12))


def test_none_is_the_identity():
    x = torch.from_numpy(_features())
    tf = TargetTransform(fit_term(x.numpy()), "none")
    assert torch.equal(tf(x), x) and torch.equal(tf.inverse(x), x)


def test_entry_stats_are_stored_with_the_cache_entry_and_refit_when_damaged(tmp_path):
    s, f = _features(n=12).mean((2, 3)), _features(n=12)
    entry = CacheEntry("k", tmp_path, {}, s.astype(np.float16), f.astype(np.float16))
    first = entry_stats(entry)
    assert (tmp_path / STATS_FILE).is_file() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    # a second reader gets the stored arrays, not a refit (changed data would give other numbers)
    other = CacheEntry("k", tmp_path, {}, (s * 2).astype(np.float16), (f * 2).astype(np.float16))
    np.testing.assert_array_equal(entry_stats(other).features.eigvecs, first.features.eigvecs)
    (tmp_path / STATS_FILE).write_bytes(b"damaged")
    refit = entry_stats(other)
    np.testing.assert_allclose(refit.summary.mean, 2 * first.summary.mean, rtol=1e-3)
    in_memory = entry_stats(CacheEntry("k", None, {}, s, f))
    np.testing.assert_allclose(in_memory.features.mean, first.features.mean, rtol=1e-3, atol=1e-3)


def test_constant_start_adaptor_outputs_the_offset_then_learns():
    torch.manual_seed(0)
    s_off, f_off = torch.randn(6), torch.randn(5, 3, 3)
    start = (TermStart(s_off, torch.full((6,), 2.0)), TermStart(f_off, torch.ones(5)))
    ad = TeacherAdaptor(8, 4, 6, 5, (3, 3), hidden=16, start=start)
    s, f = ad(torch.randn(2, 8), torch.randn(2, 4, 6, 6))
    assert torch.equal(s, s_off.expand(2, 6)) and torch.equal(f, f_off.expand(2, 5, 3, 3))
    opt = torch.optim.SGD(ad.parameters(), lr=0.1)
    x = torch.randn(4, 8), torch.randn(4, 4, 6, 6)
    for _ in range(3):
        s, f = ad(*x)
        loss = mse_loss(s, torch.zeros_like(s)).mean() + mse_loss(f, torch.zeros_like(f)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(ad.summary.fc1.weight.grad.abs().sum()) > 0  # the first layer trains once the last has moved


def test_mse_loss_on_hand_numbers():
    a = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    b = torch.tensor([[1.0, 0.0], [3.0, 1.0]])
    assert mse_loss(a, b).tolist() == [2.0, 5.0]


def test_recipe_options_enter_the_pipeline_id_only_when_set():
    from pathlib import Path

    from radio_nas.distill import load_pipeline

    gpu = Path(__file__).resolve().parents[1] / "pipelines/distill_gpu.yaml"
    # recorded before targets / adaptor.init / loss.kind existed: studies keep their pipeline ids
    assert load_pipeline(gpu).id == "cd103f4c67fd"
    assert load_pipeline(gpu, {"adaptor.hidden": 64, "loss.cos_weight": 0.5}).id == "1b4d0051d005"
    ids = {
        load_pipeline(gpu, {k: v}).id
        for k, v in [("targets.standardize", "phi-s"), ("adaptor.init", "constant"), ("loss.kind", "mse")]
    }
    assert len(ids) == 3 and "cd103f4c67fd" not in ids
