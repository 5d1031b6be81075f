"""ODENetClassifier and the plain ctdl.odenet.ODENet: shapes, adjoint = backprop gradients, the
regulariser, old checkpoints, the benchmark's metrics."""

import pytest
import torch

from ctdl.models import ODENetClassifier
from ctdl.odenet import ODENet, accuracy, classification_loss, solver_overhead, training_step_memory_mib


def test_adjoint_and_backprop_gradients_agree_in_float64():
    torch.manual_seed(0)
    x, y = torch.randn(32, 2, dtype=torch.float64), torch.randint(0, 5, (32,))
    grads = []
    for adjoint in (False, True):
        torch.manual_seed(1)
        model = ODENetClassifier(width=6, steps=16, adjoint=adjoint).double()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert torch.allclose(grads[0], grads[1], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    "dynamics, method", [("resnet", "rk4"), ("antisymmetric", "euler"), ("hamiltonian", "leapfrog")]
)
def test_image_and_vector_models_give_logits(dynamics, method):
    img = ODENetClassifier(
        input_shape=[1, 12, 12],
        num_classes=10,
        width=[4, 8],
        dynamics=dynamics,
        method=method,
        steps=2,
        pool=2,
        act="relu",
    )
    assert img(torch.randn(3, 1, 12, 12)).shape == (3, 10)
    vec = ODENetClassifier(input_shape=[3], num_classes=4, width=[5, 6], dynamics=dynamics, method=method)
    assert vec(torch.randn(7, 3)).shape == (7, 4)
    traj = vec.features(torch.randn(7, 3), n_times=5)
    assert [tuple(t.shape) for t in traj] == [(5, 7, 5), (5, 7, 6)]


def test_regularizer_is_half_alpha_squared_norm_plus_smoothness():
    model = ODENetClassifier(width=3, pieces=3, alpha=0.1, smoothness=0.0)
    expected = 0.05 * sum(p.pow(2).sum() for p in model.parameters())
    assert model.regularizer().item() == pytest.approx(expected.item())
    smooth = ODENetClassifier(width=3, pieces=3, alpha=0.0, smoothness=2.0)
    K = smooth.net.blocks[0].dynamics.K.values
    b = smooth.net.blocks[0].dynamics.b.values
    h1 = ((K[1:] - K[:-1]).pow(2).sum() + (b[1:] - b[:-1]).pow(2).sum()) / (1 / 3)
    assert smooth.regularizer().item() == pytest.approx(2.0 * h1.item())


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="input_shape must be"):
        ODENetClassifier(input_shape=[1, 28])
    with pytest.raises(ValueError, match="unknown scheduler"):
        ODENetClassifier(scheduler="step")


def test_the_classifier_is_its_plain_network():
    torch.manual_seed(0)
    model = ODENetClassifier(input_shape=[3], num_classes=4, width=[5, 6], alpha=0.1)
    torch.manual_seed(0)
    net = ODENet(input_shape=[3], num_classes=4, width=[5, 6])
    theirs = net.state_dict()
    assert all(torch.equal(v, theirs[k]) for k, v in model.net.state_dict().items())
    x, y = torch.randn(9, 3), torch.randint(0, 4, (9,))
    assert torch.equal(model(x), net(x))
    loss, ce = classification_loss(net, net(x), y, alpha=0.1)
    assert ce.item() == pytest.approx(torch.nn.functional.cross_entropy(net(x), y).item())
    assert loss.item() == pytest.approx((ce + model.regularizer()).item())
    assert accuracy(torch.eye(4)[[0, 1, 2]], torch.tensor([0, 1, 3])).item() == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="unknown ODE method 'rk5'"):
        ODENet(method="rk5")
    with pytest.raises(ValueError, match="but the model was built for input_shape=\\[3\\]"):
        net(torch.randn(2, 4))


def test_checkpoints_with_the_network_at_the_top_level_still_load(tmp_path):
    """Checkpoints written before ODENet was its own module hold openings.*, blocks.*, classifier.*."""
    torch.manual_seed(0)
    model = ODENetClassifier(input_shape=[1, 8, 8], num_classes=3, width=[2, 4], steps=2, pool=2)
    legacy = {k.removeprefix("net."): v.clone() for k, v in model.state_dict().items()}
    assert {k.split(".")[0] for k in legacy} == {"openings", "blocks", "classifier"}
    fresh = ODENetClassifier(input_shape=[1, 8, 8], num_classes=3, width=[2, 4], steps=2, pool=2)
    assert not torch.equal(fresh.net.classifier.weight, model.net.classifier.weight)
    fresh.load_state_dict(legacy)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in fresh.state_dict().items())
    # and through a Lightning checkpoint file
    path = tmp_path / "old.ckpt"
    torch.save(
        {"state_dict": legacy, "hyper_parameters": dict(model.hparams), "pytorch-lightning_version": "2.0"},
        path,
    )
    loaded = ODENetClassifier.load_from_checkpoint(path)
    x = torch.randn(2, 1, 8, 8)
    assert torch.equal(loaded(x), model(x))


def test_the_memory_and_overhead_metrics_of_the_benchmark():
    mib = training_step_memory_mib(4, False, width=16, batch=32)  # the peak only grows: >= 0
    assert 0 <= mib < 1024
    rows = solver_overhead(batch=8, width=4, steps=2, repeats=1)
    assert [r["mode"] for r in rows] == ["forward", "forward+backward"]
    assert all(r["ratio"] > 0 and r["ctdl_us_per_step"] > 0 for r in rows)
