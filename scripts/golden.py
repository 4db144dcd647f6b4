"""Golden metrics: tiny runs whose metrics.csv (wall-clock rows aside) a refactor must
keep identical (tests/integration/test_golden.py reruns them).

    python scripts/golden.py --write      # record tests/data/golden/<name>.csv
    python scripts/golden.py              # rerun and compare (exit 1 on a difference)

The set covers every algorithm, every rule family, pre-aggregators, stateful and
random stages, local and omniscient attacks, adaptive and tuned attacks, partial
participation, worker momentum and FLTrust's server row. Record it before a refactor;
an intentional numeric change rewrites it in its own commit.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "data" / "golden"

TINY = ["rounds=5", "eval_every=5", "cluster.n_workers=9", "cluster.byz_frac=0.25",
        "batch_size=8", "progress=false", "plot=false", "model.hidden=[8]", "threads=1"]

# name -> overrides (on top of TINY)
CASES: dict[str, list[str]] = {
    "mean_none": ["attack=none", "agg=mean"],
    "median_alie": ["attack=alie", "agg=median"],
    "trmean_ipm": ["attack=ipm", "agg=trmean"],
    "krum_sign_flip": ["attack=sign_flip", "agg=krum"],
    "multikrum_nnm_alie": ["attack=alie", "agg=multikrum", "preagg=[nnm]"],
    "bulyan_fang_trmean": ["attack=fang_trmean", "agg=bulyan", "cluster.n_workers=11",
                           "cluster.byz_frac=0.2"],
    "geomed_gaussian": ["attack=gaussian", "agg=geomed"],
    "cclip_bucketing_momentum_adam": ["attack=alie", "agg=cclip", "preagg=[bucketing,clipping]",
                                      "worker_momentum=0.9", "solver=adam"],
    "meamed_label_flip": ["attack=label_flip", "agg=meamed"],
    "phocas_alie_local": ["attack=alie_local", "agg=phocas"],
    "mda_bit_flip": ["attack=bit_flip", "agg=mda"],
    "hc_krum_min_max": ["attack=min_max", "agg=hc_krum"],
    "dnc_min_sum": ["attack=min_sum", "agg=dnc"],
    "signguard_signguard_evasion": ["attack=signguard_evasion", "agg=signguard"],
    "flame_mimic": ["attack=mimic", "agg=flame"],
    "foolsgold_rop": ["attack=rop", "agg=foolsgold"],
    "fltrust_fang_krum": ["attack=fang_krum", "agg=fltrust", "agg.server_data.size=40"],
    "monna_honest_alie": ["attack=alie", "agg=monna", "agg.pivot=honest"],
    "caf_sparse": ["attack=sparse", "agg=caf"],
    "smea_anticge": ["attack=anticge", "agg=smea"],
    "cge_inf_grad": ["attack=inf_grad", "agg=cge"],
    "clipped_clustering_nan_grad": ["attack=nan_grad", "agg=clipped_clustering"],
    "gas_fang_partial": ["attack=fang_partial", "agg=gas"],
    "arc_krum_alie": ["attack=alie", "agg=krum", "preagg=[arc]"],
    "seesaw_krum": ["attack=seesaw", "agg=krum"],
    "seesaw_median_rmsprop": ["attack=seesaw", "agg=median", "solver=rmsprop"],
    "finite_norm_trmean": ["attack=finite_norm", "agg=trmean"],
    "directional_deviation_cclip": ["attack=directional_deviation", "agg=cclip"],
    "alie_tuned_median": ["attack=alie", "attack.tune=true", "agg=median"],
    "ipm_server_randomness_bucketing": ["attack=ipm", "attack.server_randomness=true",
                                        "agg=median", "preagg=[bucketing]",
                                        "cluster.n_workers=13"],
    "fedavg_median_alie": ["algorithm=fedavg", "algorithm.local_steps=2", "solver.lr=1",
                           "attack=alie", "agg=median"],
    "fedavg_participation_trmean": ["algorithm=fedavg", "algorithm.local_steps=2",
                                    "solver.lr=1", "cluster.n_workers=16",
                                    "cluster.participation=0.5", "attack=ipm", "agg=trmean",
                                    "worker_momentum=0.5"],
    "dsgd_participation_fixed_foolsgold": ["cluster.n_workers=16", "cluster.participation=0.5",
                                           "cluster.byz_per_round=fixed", "attack=label_flip",
                                           "agg=foolsgold", "worker_momentum=0.9"],
    "fltrust_fedavg_momentum": ["algorithm=fedavg", "algorithm.local_steps=2", "solver.lr=1",
                                "attack=alie", "agg=fltrust", "agg.server_data.size=40",
                                "worker_momentum=0.9"],
    "dirichlet_cclip_heavy_ball": ["partition=dirichlet", "attack=bit_flip", "agg=cclip",
                                   "worker_momentum=0.9", "worker_momentum_style=heavy_ball",
                                   "solver=momentum"],
    "logreg_linreg_optgap": ["dataset=synthetic_linreg", "model=logreg", "~model.hidden",
                             "attack=alie", "agg=median"],
}


def run_case(name: str) -> list[tuple[int, str, str, str]]:
    """The metrics rows (wall-clock split dropped) of one golden case, values as repr."""
    import torch
    from hydra import compose, initialize_config_dir

    from byzbench.build import build_experiment
    from byzbench.loop import train
    from byzbench.run import CONF_DIR

    overrides = list(TINY) + CASES[name]
    if "~model.hidden" in overrides:  # a model without hidden layers
        overrides = [o for o in overrides if "model.hidden" not in o]
    torch.set_num_threads(1)
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    exp, _ = build_experiment(cfg)
    train(exp)
    exp.log.flush()
    return [(t, s, m, repr(float(v))) for t, s, m, v in exp.log.rows if s != "time"]


def read_golden(name: str) -> list[tuple[int, str, str, str]]:
    import csv

    with open(GOLDEN / f"{name}.csv", newline="") as fh:
        r = csv.reader(fh)
        next(r)
        return [(int(t), s, m, v) for t, s, m, v in r]


def write_golden(name: str, rows: list[tuple[int, str, str, str]]) -> None:
    import csv

    GOLDEN.mkdir(parents=True, exist_ok=True)
    with open(GOLDEN / f"{name}.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(("round", "split", "metric", "value"))
        w.writerows(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="record the golden files")
    ap.add_argument("names", nargs="*", help="cases (default: all)")
    a = ap.parse_args(argv)
    bad = 0
    for name in a.names or list(CASES):
        rows = run_case(name)
        if a.write:
            write_golden(name, rows)
            print(f"wrote {name}: {len(rows)} rows")
        elif rows != read_golden(name):
            bad += 1
            print(f"DIFFERS {name}")
        else:
            print(f"same    {name}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
