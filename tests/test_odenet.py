"""ODENetClassifier as a module: shapes, adjoint = backprop gradients, the regulariser."""

import pytest
import torch

from ctdl.models import ODENetClassifier


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
    K = smooth.blocks[0].dynamics.K.values
    b = smooth.blocks[0].dynamics.b.values
    h1 = ((K[1:] - K[:-1]).pow(2).sum() + (b[1:] - b[:-1]).pow(2).sum()) / (1 / 3)
    assert smooth.regularizer().item() == pytest.approx(2.0 * h1.item())


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="input_shape must be"):
        ODENetClassifier(input_shape=[1, 28])
    with pytest.raises(ValueError, match="unknown scheduler"):
        ODENetClassifier(scheduler="step")
