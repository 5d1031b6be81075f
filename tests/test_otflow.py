"""OTFlow as a module: invertibility, change of variables, trace modes, training, bad input; the
plain loss, metrics and baseline of ctdl.otflow."""

import math

import lightning as L
import pytest
import torch

from ctdl.datamodules import Toy2DDensity
from ctdl.models import OTFlow
from ctdl.otflow import edge_bands, fresh_excess, fresh_points, inverse_error, kl_gap, otflow_loss
from ctdl.otflow.baselines import FFJORDStyleCNF


@pytest.fixture
def flow():
    torch.manual_seed(0)
    return OTFlow(dim=2, width=16).double()


def test_inverse_undoes_forward_in_float64(flow):
    x = torch.randn(200, 2, dtype=torch.float64)
    z = flow(x, steps=32)
    assert (z - x).norm(dim=1).mean() > 0.1  # the map is not the identity
    assert (flow.inverse(z, steps=32) - x).norm(dim=1).max() < 1e-3


def test_log_prob_is_the_change_of_variables_of_the_flow_map(flow):
    """log p(x) = log N(F(x); 0, I) + log |det dF/dx|, up to the RK4 error of 32 steps."""
    x = torch.randn(4, 2, dtype=torch.float64)
    log_p = flow.log_prob(x, steps=32)
    for k in range(4):
        J = torch.autograd.functional.jacobian(lambda v: flow(v[None], steps=32)[0], x[k])
        z = flow(x[k : k + 1], steps=32)[0]
        expected = -0.5 * z.pow(2).sum() - math.log(2 * math.pi) + torch.linalg.slogdet(J)[1]
        assert log_p[k].item() == pytest.approx(expected.item(), abs=1e-3)


@pytest.mark.slow
def test_exact_and_autograd_traces_agree_and_hutchinson_is_unbiased(flow):
    x = torch.randn(64, 2, dtype=torch.float64)
    exact = flow.log_prob(x, steps=8)
    flow.flow.trace = "autograd"
    assert torch.allclose(flow.log_prob(x, steps=8), exact, atol=1e-10)
    flow.flow.trace = "hutchinson"
    torch.manual_seed(1)
    with torch.no_grad():
        estimates = torch.stack([flow.log_prob(x, steps=8) for _ in range(30)])
    assert not torch.allclose(estimates[0], exact, atol=1e-6)  # noisy ...
    errors = (estimates - exact).flatten()  # ... but centred on the exact value
    assert errors.mean().abs() < 4 * errors.std() / math.sqrt(errors.numel())


def test_training_lowers_the_nll_towards_the_true_entropy():
    torch.manual_seed(0)
    flow = OTFlow(dim=2, width=16, alpha_C=10.0, lr=0.05).double()
    data = 0.5 * torch.randn(2048, 2, dtype=torch.float64) + torch.tensor([1.0, -1.0], dtype=torch.float64)
    entropy = 2 * (0.5 * math.log(2 * math.pi * 0.25) + 0.5)  # E[-log p] of the true density
    opt = torch.optim.Adam(flow.parameters(), lr=0.05)
    with torch.no_grad():
        before = flow.nll_terms(data, steps=8)[0].mean().item()
    for _ in range(60):
        loss = flow.loss_terms(data[torch.randint(0, 2048, (256,))], steps=4)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = flow.nll_terms(data, steps=8)[0].mean().item()
    assert before > entropy + 3 and after < entropy + 0.5


def test_samples_and_log_prob_shapes_and_clamping(flow):
    samples = flow.sample(100, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (100, 2) and samples.dtype == torch.float64 and torch.isfinite(samples).all()
    assert flow.log_prob(samples).shape == (100,)
    flow.hparams.clamp = 0.5
    with torch.no_grad():
        flow.potential.w.fill_(3.0)
    flow.clamp_parameters()
    assert all(p.abs().max() <= 0.5 for p in flow.parameters())


def test_bad_input():
    with pytest.raises(ValueError, match=r"samples of shape \[3\] but the model was built for dim=2"):
        OTFlow(dim=2).log_prob(torch.randn(5, 3))
    with pytest.raises(TypeError, match=r"x is torch.float32 but the model's parameters are torch.float64"):
        OTFlow(dim=2).double().log_prob(torch.randn(5, 2))
    with pytest.raises(ValueError, match="unknown trace method 'hutch'; known methods: exact, autograd"):
        OTFlow(trace="hutch")


def test_bf16_autocast_training_step_runs_on_both_trace_layouts():
    for dim in (2, 6):  # per-coordinate path (d <= 4) and the stacked one with its own backward
        torch.manual_seed(0)
        flow = OTFlow(dim=dim, width=8)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = flow.loss_terms(torch.randn(16, dim), steps=2)["loss"]
        loss.backward()
        grads = [p.grad for p in flow.parameters() if p.grad is not None]  # Phi's constant has none
        assert torch.isfinite(loss) and len(grads) >= 7 and all(torch.isfinite(g).all() for g in grads)


def test_predict_returns_the_log_density_of_the_batch(flow):
    x = torch.randn(7, 2, dtype=torch.float64)
    out = flow.predict_step((x,), 0)
    assert set(out) == {"log_prob"}
    torch.testing.assert_close(out["log_prob"], flow.log_prob(x, steps=flow.hparams.eval_steps))


def test_checkpoint_with_the_potential_at_the_top_level_still_loads(flow, tmp_path):
    """Checkpoints keep Phi under "potential.*" from before the flow was its own module."""
    trainer = L.Trainer(max_steps=0, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.strategy.connect(flow)
    trainer.save_checkpoint(tmp_path / "new.ckpt")
    ckpt = torch.load(tmp_path / "new.ckpt", weights_only=True)
    assert all(k.startswith("flow.potential.") for k in ckpt["state_dict"])
    ckpt["state_dict"] = {k.removeprefix("flow."): v for k, v in ckpt["state_dict"].items()}
    torch.save(ckpt, tmp_path / "legacy.ckpt")
    x = torch.randn(20, 2, dtype=torch.float64)
    for path in ("new.ckpt", "legacy.ckpt"):
        loaded = OTFlow.load_from_checkpoint(tmp_path / path, map_location="cpu").double()
        torch.testing.assert_close(loaded.log_prob(x, steps=8), flow.log_prob(x, steps=8), rtol=0, atol=0)


@pytest.mark.slow
def test_conditional_flow_learns_a_conjugate_gaussian_posterior():
    """theta ~ N(0, 1), y = theta + N(0, s^2): p(theta | y) = N(y / (1 + s^2), s^2 / (1 + s^2))."""
    s2 = 0.25
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = OTFlow(dim=1, cond_dim=1, width=8, alpha_C=100.0, alpha_R=1.0).double()
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 200)
    for _ in range(200):
        theta = torch.randn(256, 1, dtype=torch.float64, generator=gen)
        y = theta + math.sqrt(s2) * torch.randn(256, 1, dtype=torch.float64, generator=gen)
        loss = model.loss_terms(theta, y, steps=4)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
    for y in (-1.0, 0.0, 1.5):
        condition = torch.tensor([y], dtype=torch.float64)
        samples = model.sample(4000, condition, steps=16, generator=torch.Generator().manual_seed(1))
        assert samples.mean().item() == pytest.approx(y / (1 + s2), abs=0.08)
        assert samples.var().item() == pytest.approx(s2 / (1 + s2), rel=0.2)
    with pytest.raises(ValueError, match=r"needs batches \(x, y\); this one has 1 tensor"):
        model.training_step((theta,), 0)


def test_cosine_schedule_follows_the_larger_of_step_and_time_progress():
    """With a max_time the cosine anneals by elapsed time when that is ahead of the steps."""
    from types import SimpleNamespace

    from lightning.pytorch.callbacks import Timer

    from ctdl.models.optim import run_progress

    timer = Timer(duration={"seconds": 100})
    timer.load_state_dict({"time_elapsed": {"train": 25.0}})  # a run resumed after 25 s, not yet restarted
    capped = run_progress(SimpleNamespace(estimated_stepping_batches=1000, callbacks=[timer]))
    assert capped(100) == pytest.approx(0.25)
    assert capped(600) == pytest.approx(0.6)
    assert capped(5000) == 1.0
    uncapped = run_progress(SimpleNamespace(estimated_stepping_batches=1000, callbacks=[]))
    assert uncapped(100) == pytest.approx(0.1)


def test_the_module_trains_on_the_plain_loss_with_one_signature(flow):
    x = torch.randn(32, 2, dtype=torch.float64)
    C, cost_L, cost_R = flow.flow.nll_terms(x, steps=4)
    expected = 1.0 * cost_L.mean() + 100.0 * C.mean() + 5.0 * cost_R.mean()  # OTFlow's default alphas
    terms = otflow_loss(flow.flow, x, steps=4)
    assert torch.equal(terms["loss"], expected) and torch.equal(terms["nll"], C.mean())
    assert all(torch.equal(terms[k], v) for k, v in flow.loss_terms(x, steps=4).items())
    with pytest.raises(TypeError, match="options are keyword-only: pass steps=4"):
        flow.log_prob(x, 4)  # the old order (x, steps, y)


def test_inverse_error_and_kl_gap():
    torch.manual_seed(0)
    flow = OTFlow(dim=2, width=8).double()
    x = torch.randn(50, 2, dtype=torch.float64)
    err = inverse_error(flow.flow, x, steps=16)
    assert err.shape == (50,) and err.max() < 1e-3
    torch.testing.assert_close(err, inverse_error(flow, x, steps=16), rtol=0, atol=0)  # module or flow
    log_true = torch.tensor([-1.0, -2.0], dtype=torch.float64)
    assert kl_gap(log_true - 0.3, log_true).item() == pytest.approx(0.3)


def test_fresh_points_are_independent_of_the_splits_and_of_each_other():
    data = Toy2DDensity("checkerboard", n_train=300, n_val=300, n_test=300, seed=0)
    data.setup()
    splits = [d.tensors[0] for d in (data.train_dataset, data.val_dataset, data.test_dataset)]
    fresh = [fresh_points("checkerboard", 300, stream, seed=0) for stream in (0, 7)]
    assert fresh[0].dtype == torch.float32 and torch.equal(fresh[1], fresh_points("checkerboard", 300, 7))
    for i, a in enumerate(splits + fresh):
        assert all(not torch.equal(a, b) for b in (splits + fresh)[i + 1 :])
    with pytest.raises(ValueError, match="stream must be >= 0"):
        fresh_points("checkerboard", 3, -1)


def test_edge_bands_split_the_gap_of_the_checkerboard(flow):
    fresh, excess = fresh_excess(flow.flow, "checkerboard", steps=4, n=2000)
    assert fresh.shape == (2000, 2) and fresh.dtype == torch.float64
    bands = edge_bands(fresh, excess)
    assert [b["distance"] for b in bands][0] == "[0.0, 0.025)" and bands[-1]["distance"] == "[0.4, 1.0]"
    assert sum(b["mass"] for b in bands) == pytest.approx(1.0, abs=1e-3)
    assert sum(b["gap_contribution"] for b in bands) == pytest.approx(excess.mean().item(), abs=1e-3)
    # the uniform checkerboard: the mass within 0.025 of an edge is 1 - (1 - 0.025)^2 = 0.049
    assert bands[0]["mass"] == pytest.approx(0.049, abs=0.015)


def test_the_ffjord_style_peer_is_a_density():
    torch.manual_seed(0)
    peer = FFJORDStyleCNF(2).double()
    x = torch.randn(16, 2, dtype=torch.float64)
    exact = peer.nll(x, exact=True)
    estimates = torch.stack([peer.nll(x) for _ in range(20)])
    assert exact.shape == (16,) and torch.isfinite(estimates).all()
    assert (estimates.mean(0) - exact).abs().mean() < (
        estimates - exact
    ).abs().mean()  # the estimator averages out
    with torch.no_grad():  # a zero field is the identity map: -log N(x; 0, I)
        peer.field.out.weight.zero_(), peer.field.out.bias.zero_()
    expected = 0.5 * x.pow(2).sum(1) + math.log(2 * math.pi)
    torch.testing.assert_close(peer.nll(x, exact=True), expected)
