"""ctdl.pde_control.evaluate and the baselines: costs against no control and the oracle, decision
timing, the terminal-value feedback, PPO as a feedback policy, and a core that imports neither
Lightning nor stable-baselines3."""

import importlib
import pkgutil
import subprocess
import sys

import numpy as np
import pytest
import torch

import ctdl.pde_control
from ctdl.pde_control import AdvectionDiffusion, evaluate, rollout
from ctdl.pde_control.baselines import open_loop_optimum, terminal_value_feedback


@pytest.fixture(scope="module")
def small():
    return AdvectionDiffusion(cells=6, steps=12)


def params_of(problem, n, seed=0):
    return problem.sample_params(n, torch.Generator().manual_seed(seed))


def test_the_package_imports_neither_lightning_nor_stable_baselines3():
    names = [m.name for m in pkgutil.walk_packages(ctdl.pde_control.__path__, "ctdl.pde_control.")]
    assert {"ctdl.pde_control.evaluate", "ctdl.pde_control.baselines.ppo"} <= set(names)
    code = (
        f"import importlib, sys; [importlib.import_module(m) for m in {names!r}]; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('lightning', 'pytorch_lightning', 'stable_baselines3')); assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_costs_and_their_summary_against_no_control_and_the_oracle(small):
    params = params_of(small, 3)
    policy = terminal_value_feedback(small)
    cost, free = evaluate.costs(small, policy, params)
    zero = torch.zeros(small.steps, 3, small.num_actuators, dtype=torch.float64)
    assert torch.allclose(free, rollout(small, small.instances(params), zero).cost)
    assert (cost < free).all()  # the feedback absorbs
    oracle = np.array([open_loop_optimum(small, p).cost for p in params])
    assert (oracle <= cost.numpy() + 1e-9).all()  # the oracle bounds every feedback from below
    summary = evaluate.cost_summary(cost, free, oracle)
    assert summary["test_cost"] == pytest.approx(cost.mean().item(), abs=1e-5)
    assert summary["over_oracle"] == pytest.approx(np.mean(cost.numpy() / oracle), abs=1e-5)
    assert summary["over_oracle"] >= 1
    assert summary["cost_ratio_to_no_control"] == pytest.approx((cost / free).mean().item(), abs=1e-5)
    achieved, gain = free.numpy() - cost.numpy(), free.numpy() - oracle
    ratio = achieved.sum() / gain.sum()
    assert summary["improvement"] == pytest.approx(ratio, abs=1e-4) and 0 < summary["improvement"] <= 1
    delta = (achieved - ratio * gain).std(ddof=1) / (np.sqrt(3) * gain.mean())
    assert summary["improvement_se"] == pytest.approx(delta, abs=1e-4)
    assert evaluate.improvement(free, free, oracle)[0] == 0
    assert evaluate.improvement(oracle, free, oracle)[0] == 1
    with pytest.raises(ValueError, match="where the oracle does not improve on no control"):
        evaluate.improvement(cost, free, free)
    with pytest.raises(ValueError, match="the oracle's costs are for 2 instances but the policy ran on 3"):
        evaluate.cost_summary(cost, free, oracle[:2])


def test_the_terminal_value_feedback_is_the_law_of_gamma_norm2(small):
    value = terminal_value_feedback(small)
    inst = small.instances(params_of(small, 2))
    u = torch.rand(2, small.size, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for t in (0.0, 0.5, small.horizon):
        assert torch.allclose(value(inst, u, t), small.gamma * small.norm2(u))
    grad = 2 * small.gamma * small.M(u)
    expected = ctdl.pde_control.feedback_law(small, inst, u, grad)
    assert torch.allclose(evaluate.decide(small, value, inst, u, 0.5), expected)


@pytest.mark.parametrize("policy", ["value", "direct"])
def test_decision_ms_times_one_decision(small, policy):
    net = terminal_value_feedback(small) if policy == "value" else ctdl.pde_control.DirectPolicy(small, 4)
    ms = evaluate.decision_ms(small, net, params_of(small, 3), repeats=2)
    assert 0 < ms < 10_000
    seconds = evaluate.episode_seconds(small, net, params_of(small, 3))
    assert 0 < seconds < 100 and seconds > ms / 1000  # a whole episode holds small.steps decisions


@pytest.mark.slow
def test_ppo_trains_and_acts_as_a_feedback_policy(small):
    pytest.importorskip("stable_baselines3")
    from ctdl.pde_control.baselines.ppo import PPOPolicy, settings_text, train_ppo
    from ctdl.pde_control.env import SourceMitigationEnv

    logged = []
    training = train_ppo(
        small, params_of(small, 8), params_of(small, 2, seed=1), env_steps=500, eval_every=250,
        n_envs=1, width=2, log_std_init=-1.0, log=logged.append,
    )  # fmt: skip
    assert isinstance(training.policy, PPOPolicy) and training.solves == 500
    normalizer = training.policy.normalizer
    assert normalizer is not None and normalizer.norm_obs and normalizer.norm_reward
    assert normalizer.obs_rms.count > 500  # the running statistics saw every observation
    assert training.agent.policy.log_std.mean().item() < -0.5  # started at -1 (sb3's default is 0)
    assert [c["env_steps"] for c in training.curve] == [1, 250, 500] and logged == training.curve
    assert settings_text() == "n_steps 500, batch 250, 10 epochs, gamma 1, GAE 0.95, lr 3e-4"
    test = params_of(small, 2, seed=2)
    cost, free = evaluate.costs(small, training.policy, test)
    assert torch.isfinite(cost).all() and cost.shape == (2,)
    # the deterministic policy's rollout cost is minus the return of the same episode in the env
    env = SourceMitigationEnv(small)
    obs, _ = env.reset(options={"params": test[0]})
    total, done = 0.0, False
    while not done:
        action, _ = training.agent.predict(normalizer.normalize_obs(obs), deterministic=True)
        obs, reward, done, _, _ = env.step(small.a_max * (np.clip(action, -1, 1) + 1) / 2)
        total += reward
    assert total == pytest.approx(-cost[0].item(), rel=1e-6)
    assert importlib.import_module("ctdl.pde_control.baselines.ppo").NET_ARCH == dict(pi=[64], vf=[64])
