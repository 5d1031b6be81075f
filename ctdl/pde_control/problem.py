"""Source mitigation: an advection-diffusion PDE with absorbing actuators, assembled by DOLFINx.

On the unit square Omega, with no-flux boundary and u(0) = 0,

    du/dt = kappa Laplace u - v . grad u + f - sum_k a_k(t) b_k(x) u,

where v = curl psi = (d_y psi, -d_x psi) comes from a random stream function
psi = sum_{i,j <= modes} c_ij sin(i pi x) sin(j pi y) (divergence-free, v . n = 0 on the boundary),
f is a sum of 1-3 Gaussian sources with random centres and rates, and the K actuators b_k are
fixed Gaussians that absorb at controlled rates 0 <= a_k <= a_max. The cost of a control is

    J = int_0^T ||u||^2 + alpha/2 |a|^2 dt + gamma ||u(T)||^2     (||u||^2 = u' M u).

Space: Q1 elements on a `cells` x `cells` quadrilateral mesh, whose (cells + 1)^2 nodes are the
pixels of an image (a fixed permutation of the degrees of freedom). DOLFINx assembles, once, the
mass matrix M, the stiffness K, one advection matrix A_m per stream-function mode (A(v) is linear
in psi, so A = sum_m c_m A_m) and the actuator matrices B_k = (int b_k phi_j phi_i). The source is
interpolated, F = M f_h.

Time: T / steps, implicit in diffusion and advection and explicit in the actuators' sink (IMEX
Euler), so that the matrix S = M + dt (kappa K + A(v)) is factorised once per velocity sample:

    S u_{n+1} = M u_n - dt sum_k a_{n,k} B_k u_n + dt F.

The explicit sink keeps u >= 0 when dt a_max max b_k < 1, which the constructor checks. The
discrete cost is J = sum_n dt (u_{n+1}' M u_{n+1} + alpha/2 |a_n|^2) + gamma u_N' M u_N.

Reference: Verma, Winovich, Ruthotto and van Bloemen Waanders, "Neural network approaches for
parameterized optimal control", arXiv 2402.10033 (source mitigation); constants of this project.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch
from torch import Tensor

__all__ = ["AdvectionDiffusion", "Instances", "DEFAULT_ACTUATORS"]

DEFAULT_ACTUATORS = ((0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75))
MAX_SOURCES = 3


@dataclass
class Instances:
    """A batch of B (v, f) samples ready to be rolled out.

    Attributes:
        params: (B, P) float64 parameters (stream-function coefficients, then (x, y, rate) per source).
        factors: B sparse LU factorisations of S = M + dt (kappa K + A(v)).
        load: (B, n) float64 F = M f_h.
        images: (B, 3, cells + 1, cells + 1) float32 images of v_x, v_y and f (the policies' inputs).
    """

    params: Tensor
    factors: list
    load: Tensor
    images: Tensor

    def __len__(self) -> int:
        return len(self.factors)


class AdvectionDiffusion:
    """The source-mitigation PDE: its constants, DOLFINx operators, random instances and images.

    Degrees of freedom n = (cells + 1)^2; a state batch u is (B, n) float64; `to_image(u)` is
    (B, cells + 1, cells + 1) with row = y index and column = x index.
    """

    def __init__(
        self,
        cells: int = 32,
        horizon: float = 1.0,
        steps: int = 50,
        kappa: float = 0.01,
        actuators: list | tuple = DEFAULT_ACTUATORS,
        actuator_width: float = 0.1,
        a_max: float = 10.0,
        alpha: float = 0.01,
        gamma: float = 1.0,
        velocity_modes: int = 2,
        velocity_scale: float = 0.5,
        sources: tuple[int, int] = (1, 3),
        source_width: float = 0.05,
        source_rate: tuple[float, float] = (20.0, 60.0),
    ) -> None:
        """
        Args:
            cells: quadrilaterals per side (the images are (cells + 1)^2 pixels).
            horizon, steps: T and the number of IMEX Euler steps.
            kappa: diffusivity.
            actuators: centres (x, y) of the K Gaussian actuators b_k, inside the unit square.
            actuator_width: their standard deviation.
            a_max: the largest absorption rate of an actuator (> 0).
            alpha, gamma: the control's weight and the terminal weight of the cost.
            velocity_modes: stream-function modes per direction (modes^2 coefficients).
            velocity_scale: typical speed |v|.
            sources: the least and most number of Gaussian sources (1 <= . <= 3).
            source_width: their standard deviation.
            source_rate: the range of their peak rates.
        """
        if int(cells) != cells or cells < 2:
            raise ValueError(f"cells must be an integer >= 2, got {cells!r}")
        if int(steps) != steps or steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        if not a_max > 0:
            raise ValueError(f"a_max must be > 0 (the actuators' largest absorption rate), got {a_max}")
        for name, value in dict(
            horizon=horizon,
            kappa=kappa,
            alpha=alpha,
            actuator_width=actuator_width,
            source_width=source_width,
        ).items():
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        if gamma < 0:
            raise ValueError(f"gamma must be >= 0, got {gamma}")
        lo, hi = (int(s) for s in sources)
        if not 1 <= lo <= hi <= MAX_SOURCES:
            raise ValueError(
                f"sources must be (least, most) with 1 <= least <= most <= {MAX_SOURCES}, got {sources}"
            )
        centres = np.asarray(actuators, dtype=float).reshape(-1, 2) if len(actuators) else np.zeros((0, 2))
        if len(centres) == 0:
            raise ValueError("at least one actuator is needed")
        outside = ~((centres >= 0) & (centres <= 1)).all(1)
        if outside.any():
            raise ValueError(
                f"actuator {int(np.argmax(outside))} at {tuple(centres[outside][0].tolist())} lies outside "
                f"the "
                f"domain, the unit square [0, 1]^2; give centres with 0 <= x, y <= 1"
            )
        self.cells, self.horizon, self.steps, self.kappa = (
            int(cells),
            float(horizon),
            int(steps),
            float(kappa),
        )
        self.actuators, self.actuator_width, self.a_max = centres, float(actuator_width), float(a_max)
        self.alpha, self.gamma = float(alpha), float(gamma)
        self.velocity_modes, self.velocity_scale = int(velocity_modes), float(velocity_scale)
        self.sources, self.source_width, self.source_rate = (lo, hi), float(source_width), tuple(source_rate)
        self.dt = self.horizon / self.steps
        if self.dt * self.a_max >= 1:  # max b_k = 1
            raise ValueError(
                f"the explicit sink needs dt * a_max < 1 to keep u >= 0; dt * a_max = "
                f"{self.dt * self.a_max:g}: raise steps above {math.ceil(self.horizon * self.a_max)} "
                f"or lower a_max"
            )
        self.solves = 0  # linear solves (forward and transposed) done with this problem's factors

    _ASSEMBLED = (
        "mass",
        "stiffness",
        "advection",
        "actuator_mats",
        "coords",
        "pixel_of_dof",
        "dof_of_pixel",
        "M",
        "B",
    )

    def __getattr__(self, name: str):
        """The DOLFINx operators are assembled on first use (a datamodule only checks the constants)."""
        if name in AdvectionDiffusion._ASSEMBLED and "_assembling" not in self.__dict__:
            self._assembling = True
            self._assemble()
            return getattr(self, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # ------------------------------------------------------------------------------ set-up
    @property
    def size(self) -> int:
        """Degrees of freedom n = (cells + 1)^2."""
        return (self.cells + 1) ** 2

    @property
    def num_actuators(self) -> int:
        return len(self.actuators)

    @property
    def num_params(self) -> int:
        return self.velocity_modes**2 + 3 * MAX_SOURCES

    @property
    def grid(self) -> int:
        """Pixels per side of the state image."""
        return self.cells + 1

    def _modes(self) -> list[tuple[int, int]]:
        return [(i, j) for i in range(1, self.velocity_modes + 1) for j in range(1, self.velocity_modes + 1)]

    def _assemble(self) -> None:
        from ctdl.fem import import_dolfinx

        dolfinx = import_dolfinx()
        import ufl
        from mpi4py import MPI

        msh = dolfinx.mesh.create_unit_square(
            MPI.COMM_SELF, self.cells, self.cells, dolfinx.mesh.CellType.quadrilateral
        )
        V = dolfinx.fem.functionspace(msh, ("Lagrange", 1))
        W = dolfinx.fem.functionspace(msh, ("Lagrange", 2))  # the stream function, exact for curl
        u, w = ufl.TrialFunction(V), ufl.TestFunction(V)

        def matrix(form) -> sp.csr_matrix:
            return dolfinx.fem.assemble_matrix(dolfinx.fem.form(form)).to_scipy().tocsr()

        self.mass = matrix(u * w * ufl.dx)
        self.stiffness = matrix(ufl.inner(ufl.grad(u), ufl.grad(w)) * ufl.dx)
        psi = dolfinx.fem.Function(W)
        vel = ufl.as_vector((psi.dx(1), -psi.dx(0)))
        advection_form = dolfinx.fem.form(ufl.dot(vel, ufl.grad(u)) * w * ufl.dx)
        self.advection = []
        for i, j in self._modes():
            psi.interpolate(lambda x, i=i, j=j: np.sin(i * np.pi * x[0]) * np.sin(j * np.pi * x[1]))
            self.advection.append(dolfinx.fem.assemble_matrix(advection_form).to_scipy().tocsr())
        b = dolfinx.fem.Function(V)
        self.actuator_mats = []
        s2 = 2 * self.actuator_width**2
        for cx, cy in self.actuators:
            b.interpolate(lambda x, cx=cx, cy=cy: np.exp(-((x[0] - cx) ** 2 + (x[1] - cy) ** 2) / s2))
            self.actuator_mats.append(matrix(b * u * w * ufl.dx))
        xy = V.tabulate_dof_coordinates()[:, :2]
        self.coords = xy
        col = np.rint(xy[:, 0] * self.cells).astype(np.int64)
        row = np.rint(xy[:, 1] * self.cells).astype(np.int64)
        pixel = row * self.grid + col
        if len(np.unique(pixel)) != self.size:
            raise RuntimeError("the Q1 degrees of freedom do not map one-to-one onto the grid's nodes")
        self.pixel_of_dof = torch.from_numpy(pixel)
        self.dof_of_pixel = torch.from_numpy(np.argsort(pixel))
        # batched, differentiable products for the rollout (float64, CPU)
        self.M = SparseOperator(self.mass)
        self.B = [SparseOperator(m) for m in self.actuator_mats]

    # ------------------------------------------------------------------------------ instances
    def sample_params(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n random (v, f) parameters (n, P) float64: stream-function coefficients c_ij ~ N(0, s_ij^2) with
        s_ij = velocity_scale / (pi sqrt(i^2 + j^2)) (so |v| ~ velocity_scale), then per source slot the
        centre (x, y) ~ U[0.15, 0.85]^2 and the peak rate ~ U(source_rate), zero for unused slots."""
        modes = self._modes()
        std = torch.tensor(
            [self.velocity_scale / (math.pi * math.hypot(i, j)) for i, j in modes], dtype=torch.float64
        )
        coef = torch.randn(n, len(modes), generator=generator, dtype=torch.float64) * std
        centres = 0.15 + 0.7 * torch.rand(n, MAX_SOURCES, 2, generator=generator, dtype=torch.float64)
        lo, hi = self.source_rate
        rate = lo + (hi - lo) * torch.rand(n, MAX_SOURCES, 1, generator=generator, dtype=torch.float64)
        count = torch.randint(self.sources[0], self.sources[1] + 1, (n, 1), generator=generator)
        rate = rate * (torch.arange(MAX_SOURCES) < count).unsqueeze(-1)
        return torch.cat([coef, torch.cat([centres, rate], -1).flatten(1)], 1)

    def check_params(self, params: Tensor) -> Tensor:
        params = torch.as_tensor(params, dtype=torch.float64).cpu()
        if params.ndim != 2 or params.shape[1] != self.num_params:
            raise ValueError(
                f"instance parameters must have shape (B, {self.num_params}) (velocity_modes^2 = "
                f"{self.velocity_modes**2} coefficients and (x, y, rate) of {MAX_SOURCES} sources); "
                f"got {tuple(params.shape)}"
            )
        return params

    def velocity_nodal(self, params: Tensor) -> Tensor:
        """v = curl psi at the nodes, (B, n, 2), from the exact derivatives of the modes."""
        params = self.check_params(params)
        x, y = (torch.from_numpy(c) for c in self.coords.T)
        vx, vy = [], []
        for i, j in self._modes():
            vx.append(j * math.pi * torch.sin(i * math.pi * x) * torch.cos(j * math.pi * y))
            vy.append(-i * math.pi * torch.cos(i * math.pi * x) * torch.sin(j * math.pi * y))
        c = params[:, : len(vx)]
        return torch.stack([c @ torch.stack(vx), c @ torch.stack(vy)], -1)

    def source_nodal(self, params: Tensor) -> Tensor:
        """f at the nodes, (B, n): sum_j rate_j exp(-|x - x_j|^2 / (2 w^2))."""
        params = self.check_params(params)
        src = params[:, self.velocity_modes**2 :].reshape(len(params), MAX_SOURCES, 3)
        xy = torch.from_numpy(self.coords)
        d2 = ((xy[None, None] - src[:, :, None, :2]) ** 2).sum(-1)
        return (src[:, :, 2:] * torch.exp(-d2 / (2 * self.source_width**2))).sum(1)

    def system_matrix(self, params_row: Tensor) -> sp.csc_matrix:
        """S = M + dt (kappa K + sum_m c_m A_m) of one instance."""
        c = params_row[: self.velocity_modes**2].tolist()
        A = sum(ci * Am for ci, Am in zip(c, self.advection, strict=True))
        return (self.mass + self.dt * (self.kappa * self.stiffness + A)).tocsc()

    def instances(self, params: Tensor) -> Instances:
        """Factorise S and build F and the images for a batch of parameters (B, P)."""
        params = self.check_params(params)
        factors = [spla.splu(self.system_matrix(p), permc_spec="MMD_AT_PLUS_A") for p in params]
        f = self.source_nodal(params)
        load = torch.from_numpy(np.asarray(self.mass @ f.numpy().T).T.copy())
        images = torch.cat(
            [self.to_image(self.velocity_nodal(params).movedim(-1, 1)), self.to_image(f)[:, None]], 1
        )
        return Instances(params, factors, load, images.float())

    # ------------------------------------------------------------------------------ fields
    def to_image(self, u: Tensor) -> Tensor:
        """Nodal values (..., n) -> images (..., cells + 1, cells + 1)."""
        if u.shape[-1] != self.size:
            raise ValueError(
                f"nodal values must end in n = (cells + 1)^2 = {self.size}; got shape {tuple(u.shape)}"
            )
        return u[..., self.dof_of_pixel.to(u.device)].unflatten(-1, (self.grid, self.grid))

    def from_image(self, image: Tensor) -> Tensor:
        """Images (..., cells + 1, cells + 1) -> nodal values (..., n)."""
        if tuple(image.shape[-2:]) != (self.grid, self.grid):
            raise ValueError(
                f"images must end in ({self.grid}, {self.grid}) for a {self.cells}x{self.cells} mesh; "
                f"got shape {tuple(image.shape)}"
            )
        return image.flatten(-2)[..., self.pixel_of_dof.to(image.device)]

    def norm2(self, u: Tensor) -> Tensor:
        """||u||^2 = u' M u per row, (B,)."""
        return (u * self.M(u)).sum(-1)

    def mass_of(self, u: Tensor) -> Tensor:
        """int u dx per row, (B,)."""
        return self.M(u).sum(-1)

    def args(self) -> dict:
        """The constructor's keywords (a checkpoint rebuilds the problem from them)."""
        return dict(
            cells=self.cells,
            horizon=self.horizon,
            steps=self.steps,
            kappa=self.kappa,
            actuators=self.actuators.tolist(),
            actuator_width=self.actuator_width,
            a_max=self.a_max,
            alpha=self.alpha,
            gamma=self.gamma,
            velocity_modes=self.velocity_modes,
            velocity_scale=self.velocity_scale,
            sources=list(self.sources),
            source_width=self.source_width,
            source_rate=list(self.source_rate),
        )


class _Matvec(torch.autograd.Function):
    """u -> u A' row-wise with a SciPy sparse A; the backward is the same product with A'."""

    @staticmethod
    def forward(ctx, u: Tensor, A: sp.csr_matrix, At: sp.csr_matrix) -> Tensor:
        ctx.A, ctx.At = A, At
        out = (A @ u.detach().to("cpu", torch.float64).numpy().T).T
        return torch.from_numpy(np.ascontiguousarray(out)).to(u)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return _Matvec.apply(grad, ctx.At, ctx.A), None, None


class SparseOperator:
    """A fixed sparse (n, n) matrix A acting on batches: `A(u)` = A u_b for each row u_b of u (B, n),
    differentiable in u (to any order)."""

    def __init__(self, matrix: sp.spmatrix) -> None:
        self.matrix = matrix.tocsr()
        self.transposed = self.matrix.T.tocsr()

    def __call__(self, u: Tensor) -> Tensor:
        return _Matvec.apply(u, self.matrix, self.transposed)
