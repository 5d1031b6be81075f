"""Small files in the formats of the MAF archive (zenodo 1161203), for tests that cannot download it."""

from pathlib import Path

import h5py
import numpy as np
import pandas as pd


def write_power(root, n=1000):
    rng = np.random.default_rng(0)
    data = np.stack(
        [
            rng.uniform(0.1, 5.0, n),  # global active power
            rng.uniform(0.0, 0.5, n),  # global reactive power (dropped)
            rng.normal(240.0, 3.0, n),  # voltage
            rng.uniform(0.0, 20.0, n),  # global intensity (dropped)
            rng.integers(0, 40, n),  # sub-metering 1-3 (integers: dequantised with U[0, 1))
            rng.integers(0, 40, n),
            rng.integers(0, 40, n),
            rng.permutation(n) / 60.0,  # time
        ],
        axis=1,
    ).astype(np.float64)
    (root / "power").mkdir(parents=True)
    np.save(root / "power" / "data.npy", data)
    return data


def write_gas(root, n=1000):
    rng = np.random.default_rng(1)
    base = rng.standard_normal((n, 8)).cumsum(axis=0)  # 8 independent random walks
    groups = [3, 2, 2, 2, 2, 2, 2, 1]  # near-copies of each walk: 16 sensor columns
    cols, expect = {}, []
    for g, reps in enumerate(groups):
        for r in range(reps):
            cols[f"S{g}_{r}"] = base[:, g] + 0.01 * rng.standard_normal(n)
        expect.append(f"S{g}_{reps - 1}")  # the last of each group survives the greedy pruning
    df = pd.DataFrame({"Time": np.arange(n) * 0.01, "Meth": base[:, 0].copy(), "Eth": base[:, 1] * 2, **cols})
    (root / "gas").mkdir(parents=True)
    df.to_pickle(root / "gas" / "ethylene_CO.pickle")
    return df[expect].to_numpy()


def write_hepmass(root, mass_values: bool):
    rng = np.random.default_rng(2)
    discrete = [5, 9, 13, 17, 21, 25]  # many repeats of the smallest value: dropped

    def table(n):
        x = rng.standard_normal((n, 27)) * rng.uniform(0.5, 3.0, 27) + rng.uniform(-2, 2, 27)
        x[:, discrete] = rng.choice([-1.2, 0.3, 1.5], size=(n, len(discrete)))
        label = (rng.uniform(size=n) < 0.5).astype(float)
        x[label == 0, 0] += 100.0  # background rows are far away: they must be filtered out
        return label, x

    names = ["# label"] + [f"f{i}" for i in range(27)]
    lab, x = table(600)
    (root / "hepmass").mkdir(parents=True)
    pd.DataFrame(np.column_stack([lab, x]), columns=names).to_csv(
        root / "hepmass" / "1000_train.csv", index=False
    )
    tlab, tx = table(300)
    path = root / "hepmass" / "1000_test.csv"
    if mass_values:  # the test file has one trailing column more than the training file
        full = np.column_stack([tlab, tx, np.full(len(tlab), 1000.0)])
        pd.DataFrame(full, columns=names + ["mass"]).to_csv(path, index=False)
    else:  # ... or the header names one column more than the rows hold
        lines = [",".join(names + ["mass"])] + [
            ",".join(f"{v:.6f}" for v in row) for row in np.column_stack([tlab, tx])
        ]
        path.write_text("\n".join(lines) + "\n")
    keep = [i for i in range(27) if i not in discrete]
    return x[lab == 1][:, keep], tx[tlab == 1][:, keep]


def write_miniboone(root: Path, n: int = 500) -> np.ndarray:
    """The archive's cleaned 43-column miniboone/data.npy."""
    rng = np.random.default_rng(3)
    data = rng.standard_normal((n, 43)) * rng.uniform(0.1, 10, 43) + rng.uniform(-5, 5, 43)
    (root / "miniboone").mkdir(parents=True)
    np.save(root / "miniboone" / "data.npy", data)
    return data


def write_bsds300(root: Path, sizes=(("train", 400), ("validation", 100), ("test", 100))) -> dict:
    """BSDS300/BSDS300.hdf5 with train / validation / test datasets of 63-d patches."""
    rng = np.random.default_rng(4)
    arrays = {k: rng.standard_normal((n, 63)).astype(np.float32) for k, n in sizes}
    (root / "BSDS300").mkdir(parents=True)
    with h5py.File(root / "BSDS300" / "BSDS300.hdf5", "w") as f:
        for k, a in arrays.items():
            f.create_dataset(k, data=a)
    return arrays


def write_maf_archive(root: Path) -> Path:
    """All five data sets, laid out as the unpacked archive: root/power/data.npy, ..."""
    write_power(root, n=3000)
    write_gas(root, n=3000)
    write_hepmass(root, mass_values=True)
    write_miniboone(root)
    write_bsds300(root)
    return root
