"""SDE steppers for the grid loop: Euler-Maruyama and the stochastic Heun scheme.

Each stepper maps (sde, t, h, y) -> Y(t + h) for the Ito SDE dY = f(t, Y) dt + g(t, Y) * dW
(`SDE`, a state of parts), drawing one increment dW per step and noisy part. `SDE_METHODS`
maps a method name to its class, as torchdiffeq's SOLVERS does. Orders as in Kloeden & Platen,
Numerical Solution of Stochastic Differential Equations (1992): strong order p means
E|Y_N - Y(T)| = O(h^p) on the same Brownian path; weak order p means
|E phi(Y_N) - E phi(Y(T))| = O(h^p) for smooth phi of polynomial growth.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .ode_steppers import Stepper
from .sde_problem import SDE, NoiseParts, Parts


def _euler_update(y: Parts, h: float, f: Parts, g: NoiseParts, dW: NoiseParts) -> Parts:
    """y + h f + g * dW part by part (no noise term where g is None)."""
    out = []
    for yi, fi, gi, wi in zip(y, f, g, dW, strict=True):
        yi = yi.add(fi, alpha=h)
        out.append(yi if gi is None else yi.addcmul(gi, wi))
    return tuple(out)


class SDEStepper(Stepper):
    """One step of an SDE method; subclasses set `strong_order` and `weak_order` (= `order`)."""

    strong_order: float = 0.0
    weak_order: float = 0.0

    def step(self, sde: SDE, t: Tensor, h: float, y: Parts) -> Parts:
        raise NotImplementedError


class EulerMaruyama(SDEStepper):
    """Euler-Maruyama, Y' = Y + f(t, Y) h + g(t, Y) dW (Kloeden & Platen 1992, Sect. 9.1).

    Strong order 1/2 and weak order 1 for Lipschitz f, g (Thms 10.2.2, 14.1.5); strong order 1
    when the noise is additive (g independent of Y), where it coincides with Milstein's scheme.
    """

    name, order, strong_order, weak_order = "euler_maruyama", 1, 0.5, 1.0

    def step(self, sde, t, h, y):
        g = sde.g(t, y)
        return _euler_update(y, h, sde.f(t, y), g, sde.dW(t, h, y, g))


class StochasticHeun(SDEStepper):
    """Stochastic Heun for additive noise g = g(t): weak order 2, strong order 1.

        Ybar = Y + f(t, Y) h + g(t) dW,
        Y'   = Y + h/2 (f(t, Y) + f(t + h, Ybar)) + 1/2 (g(t) + g(t + h)) dW.

    For autonomous additive noise this is Platen's explicit weak order 2.0 scheme (Kloeden &
    Platen 1992, eq. 15.1.1, whose b(U+-) terms vanish when b does not depend on Y); averaging g
    over the step supplies the term g'(t) (h dW - dZ) ~ h/2 g'(t) dW of the simplified weak
    order 2.0 Taylor scheme (Sect. 14.2) when g depends on t. Weak order 2 needs f and g smooth
    with polynomial growth and Gaussian increments (Brownian, or coloured dW = sqrt(|h|) A xi,
    which is still additive noise, g A). Strong order 1, as Euler-Maruyama's for additive noise.
    With additive noise Ito and Stratonovich calculus agree; for noise that depends on Y this
    scheme converges to the Stratonovich solution, not the Ito one, so on the first step it
    evaluates g(t + h, Y) as well and raises if that differs from g(t + h, Ybar)
    (`check_additive=False` skips that one extra evaluation and host sync).
    """

    name, order, strong_order, weak_order = "heun", 2, 1.0, 2.0

    def __init__(self, check_additive: bool = True) -> None:
        self.check_additive = check_additive

    def step(self, sde, t, h, y):
        f0, g0 = sde.f(t, y), sde.g(t, y)
        dW = sde.dW(t, h, y, g0)
        y_bar = _euler_update(y, h, f0, g0, dW)
        t1 = t + h
        f1, g1 = sde.f(t1, y_bar), sde.g(t1, y_bar)
        if self.check_additive:
            self._check_additive(g1, sde.g(t1, y))
            self.check_additive = False
        out = []
        for yi, a, b, p, q, wi in zip(y, f0, f1, g0, g1, dW, strict=True):
            yi = yi.add(a + b, alpha=0.5 * h)
            out.append(yi if p is None else yi.addcmul(p + q, wi, value=0.5))
        return tuple(out)

    @staticmethod
    def _check_additive(g_bar: NoiseParts, g_y: NoiseParts) -> None:
        for i, (a, b) in enumerate(zip(g_bar, g_y, strict=True)):
            same = (a is None and b is None) or (
                a is not None and b is not None and a.shape == b.shape and torch.allclose(a, b)
            )
            if not same:
                raise ValueError(
                    f"method='heun' needs additive noise, a diffusion g(t) that does not depend on the "
                    f"state, but part {i} of g(t, y) changed with y; use method='euler_maruyama' for "
                    "state-dependent (multiplicative) noise"
                )


SDE_METHODS: dict[str, type[SDEStepper]] = {
    "euler_maruyama": EulerMaruyama,
    "heun": StochasticHeun,
}
