"""OT-Flow: density estimation with the potential flow v = -grad Phi, its transport cost and HJB
penalty (Onken, Wu Fung, Li, Ruthotto, AAAI 2021), as a thin LightningModule over
`ctdl.flows.PotentialFlow` (the math: the (x, l, L, R) system, log_prob, sample, inverse), the
loss `ctdl.otflow.otflow_loss` and the metrics of `ctdl.otflow.evaluate`.

loss = alpha_L mean L + alpha_C mean C + alpha_R mean R, with C = -log p(x) in nats, L the
transport cost and R the HJB penalty of each sample. Classic RK4 with fixed steps (`steps` in
training, `eval_steps` for validation and sampling, `test_steps` for testing).
"""

from __future__ import annotations

import lightning as L
import torch
from torch import Tensor

from ctdl.flows import PotentialFlow
from ctdl.otflow import clamp_parameters, inverse_error, otflow_loss
from ctdl.potential import Potential, check_trace
from ctdl.protocols import true_log_density

from .optim import adamw_with_schedule, check_scheduler


class OTFlow(L.LightningModule):
    """Density estimation with OT-Flow. Logs train/loss, val/nll, val/nll_train_steps (val/nll
    with the training step count), test/nll, test/transport, test/hjb, test/inv_err, and
    test/nll_true and test/gap (the KL gap) when the datamodule knows its true density.
    After training: `log_prob(x)`, `sample(n)`, `forward(x)`, `inverse(z)`; `flow` is the plain
    `PotentialFlow` (usable without Lightning), `potential` its Phi."""

    def __init__(
        self,
        dim: int = 2,
        width: int = 32,
        depth: int = 2,
        rank: int | None = None,
        alpha_L: float = 1.0,
        alpha_C: float = 100.0,
        alpha_R: float = 5.0,
        steps: int = 8,
        eval_steps: int = 16,
        test_steps: int | None = None,
        trace: str = "exact",
        clamp: float | None = None,
        lr: float = 0.01,
        weight_decay: float = 0.0,
        scheduler: str = "cosine",
        predict_samples: bool = False,
        cond_dim: int = 0,
    ) -> None:
        """
        Args:
            dim: dimension d of the data (linked from the datamodule by the `ctdl` command).
            width: width m of the potential's ResNet.
            depth: layers of the ResNet (nTh; 2 in every published run).
            rank: rank of A (default min(10, d + 1)).
            alpha_L, alpha_C, alpha_R: weights of transport cost, NLL and HJB penalty.
            steps: RK4 steps on [0, 1] in training.
            eval_steps: RK4 steps for validation, log_prob and sampling.
            test_steps: RK4 steps for testing (default: eval_steps).
            trace: "exact" (hand-derived), "autograd" (d backward passes) or "hutchinson".
            clamp: clamp every parameter to [-clamp, clamp] after each step (published: 1.5).
            lr: Adam learning rate.
            weight_decay: AdamW weight decay.
            scheduler: "cosine" (per step, to zero at max_steps or max_time) or "none".
            predict_samples: `ctdl predict` also writes model samples (as many as data points).
            cond_dim: dimension q of a condition y (0: an unconditional density). With q > 0 the
                model learns p(x | y) from batches (x, y) and every method takes y.
        """
        super().__init__()
        self.save_hyperparameters()
        check_trace(trace)
        check_scheduler(scheduler)
        self.dim = dim
        self.flow = PotentialFlow(
            Potential(dim, width, depth=depth, rank=rank, cond_dim=cond_dim), trace=trace, steps=eval_steps
        )
        # checkpoints written before the flow became its own module keep Phi under "potential."
        self._register_load_state_dict_pre_hook(_rename_legacy_keys)

    @property
    def potential(self) -> Potential:
        return self.flow.potential

    # ----------------------------------------------------------------------------- the flow
    # One signature (x, y=None, *, steps=None): the condition y second (only with cond_dim > 0:
    # (batch, q), or (q,) for all), options keyword-only; steps=None takes eval_steps.
    def forward(self, x: Tensor, y: Tensor | None = None, *, steps: int | None = None) -> Tensor:
        """The flow map F: data x -> latent z = x(1)."""
        return self.flow(x, y, steps=steps or self.hparams.eval_steps)

    def inverse(self, z: Tensor, y: Tensor | None = None, *, steps: int | None = None) -> Tensor:
        """F^{-1}: latent z -> data, integrating dx/dt = -grad Phi backwards from t = 1 to 0."""
        return self.flow.inverse(z, y, steps=steps or self.hparams.eval_steps)

    def nll_terms(
        self, x: Tensor, y: Tensor | None = None, *, steps: int | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Per-sample (C, L, R): NLL in nats, transport cost, HJB penalty."""
        return self.flow.nll_terms(x, y, steps=steps or self.hparams.eval_steps)

    def log_prob(self, x: Tensor, y: Tensor | None = None, *, steps: int | None = None) -> Tensor:
        """Natural-log density of the model at x (given y), shape (batch,)."""
        return self.flow.log_prob(x, y, steps=steps or self.hparams.eval_steps)

    def sample(
        self,
        n: int,
        y: Tensor | None = None,
        *,
        steps: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """n samples, shape (n, dim): z ~ N(0, I) pushed through F^{-1} (given y)."""
        return self.flow.sample(n, y, steps=steps or self.hparams.eval_steps, generator=generator)

    def split_batch(self, batch: tuple[Tensor, ...]) -> tuple[Tensor, Tensor | None]:
        """(x, y) of a batch: (x,) for a density, (x, y) for a conditional density."""
        if self.hparams.cond_dim:
            if len(batch) < 2:
                raise ValueError(
                    f"a conditional OTFlow (cond_dim={self.hparams.cond_dim}) needs batches "
                    f"(x, y); this one has {len(batch)} tensor(s)"
                )
            return batch[0], batch[1]
        return batch[0], None

    # ------------------------------------------------------------------------------ training
    def loss_terms(
        self, x: Tensor, y: Tensor | None = None, *, steps: int | None = None
    ) -> dict[str, Tensor]:
        """`ctdl.otflow.otflow_loss` with this model's weights: loss, nll, transport, hjb."""
        h = self.hparams
        return otflow_loss(
            self.flow,
            x,
            y,
            steps=steps or h.eval_steps,
            alpha_L=h.alpha_L,
            alpha_C=h.alpha_C,
            alpha_R=h.alpha_R,
        )

    def training_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        x, y = self.split_batch(batch)
        terms = self.loss_terms(x, y, steps=self.hparams.steps)
        self.log_dict({f"train/{k}": v for k, v in terms.items()}, prog_bar=True, batch_size=len(x))
        return terms["loss"]

    def clamp_parameters(self) -> None:
        """Clamp every parameter to [-clamp, clamp] (no-op when clamp is None)."""
        clamp_parameters(self, self.hparams.clamp)

    def optimizer_step(self, *args, **kwargs) -> None:
        """The optimiser's step, then the clamp: so callbacks that read the weights after the step
        (EMAWeightAveraging) see them inside the box."""
        super().optimizer_step(*args, **kwargs)
        self.clamp_parameters()

    def _eval_step(self, batch: tuple[Tensor, ...], stage: str) -> None:
        x, y = self.split_batch(batch)
        h = self.hparams
        steps = (h.test_steps or h.eval_steps) if stage == "test" else h.eval_steps
        terms = self.loss_terms(x, y, steps=steps)
        logs = {f"{stage}/{k}": v for k, v in terms.items()}
        if stage == "val" and h.steps != steps:
            # The NLL the training discretisation reports on the same data: far below val/nll means
            # the optimiser exploits the coarse steps' error in the log-determinant.
            logs["val/nll_train_steps"] = self.nll_terms(x, y, steps=h.steps)[0].mean()
        if stage == "test":
            logs["test/inv_err"] = inverse_error(self.flow, x, y, steps=steps).mean()
            log_density = true_log_density(getattr(self._trainer, "datamodule", None))
            if log_density is not None and y is None:  # KL gap E[-log p_model] - E[-log p_true] >= 0
                logs["test/nll_true"] = -log_density(x).to(x.dtype).mean()
                logs["test/gap"] = logs["test/nll"] - logs["test/nll_true"]
        self.log_dict(logs, prog_bar=stage == "val", batch_size=len(x), sync_dist=True)

    def validation_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def predict_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> dict[str, Tensor]:
        """`ctdl predict`: the model's log-density `log_prob` (batch,) at each point of the batch (the
        datamodule's predict split, its test split; given the batch's y when conditional), with
        test_steps RK4 steps as in testing; with `predict_samples` also `sample` (batch, dim): as
        many model samples as the batch holds (the i-th given the i-th y), from a generator seeded
        with the batch's index (the same files on every run)."""
        x, y = self.split_batch(batch)
        h = self.hparams
        steps = h.test_steps or h.eval_steps
        out = {"log_prob": self.log_prob(x, y, steps=steps)}
        if h.get("predict_samples", False):
            seed = batch_idx * self.trainer.world_size + self.global_rank
            gen = torch.Generator(device=x.device).manual_seed(seed)
            out["sample"] = self.sample(len(x), y, steps=steps, generator=gen)
        return out

    def configure_optimizers(self):
        return adamw_with_schedule(self)


def _rename_legacy_keys(state_dict: dict, prefix: str, *args) -> None:
    """Load-state-dict pre-hook: "<prefix>potential.*" -> "<prefix>flow.potential.*"."""
    old = prefix + "potential."
    for key in [k for k in state_dict if k.startswith(old)]:
        state_dict[prefix + "flow." + key[len(prefix) :]] = state_dict.pop(key)
