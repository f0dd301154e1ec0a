"""The report's "Sampled steps vs a full epoch" section and the label-diversity answers.

Step rows are GENERATED (tests/fixtures/report_results.py); the folder's sweep.json carries
the real definition of sweeps/remedies.yaml, so the epoch view is the real MAMe plan (the
shipped shape table). Expectations are recomputed here from the plan and the stored rows.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from hrvs_ray.config import load_sweep
from hrvs_ray.plan.epoch import policy_views
from hrvs_ray.plan.table import planning_shapes
from hrvs_ray.remedy_axes import PAPER, Remedy
from hrvs_ray.report import build_report
from tests.fixtures.report_results import make_results, stored_steps
from tests.helpers import REPO, section, table_rows

# report rendering / torch training: seconds per test, so out of the fast lane (README)
pytestmark = pytest.mark.slow

BUCKET = Remedy("bucket", "bfloat16", "channels_last")
ACCUM = Remedy("accumulate")


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, str]:
    tmp = tmp_path_factory.mktemp("epoch")
    root = make_results(tmp / "r", sweep="remedies", clusters=["gen-a"], scopes=["node"],
                        input_sets=["MR&VS", "HR&VS"], runs=1, steps=3, remedies=[PAPER, BUCKET, ACCUM])
    ident = json.loads((root / "sweep.json").read_text())
    ident["definition"] = load_sweep(REPO / "sweeps" / "remedies.yaml").to_dict()
    (root / "sweep.json").write_text(json.dumps(ident, default=list))
    return root, build_report([root], tmp / "r.html").read_text(encoding="utf-8")


def test_padding_and_diversity_are_the_plans_over_sampled_steps_and_an_epoch(report):
    _, html = report
    sweep = load_sweep(REPO / "sweeps" / "remedies.yaml")
    views = policy_views(sweep, planning_shapes(sweep)[0])
    rows = {(r[0], r[1]): r for r in table_rows(section(html, "Sampled steps vs a full epoch"),
                                          "Padding and label diversity: sampled steps vs a full epoch")}
    assert ("LR&FS", "pad") in rows and ("HR&VS", "accumulate") in rows
    for (name, batching), v in views.items():
        r = rows[(name, batching)]
        assert (r[4] == f"{100 * v['sampled']['padding_share']:.1f}"
                and r[7] == f"{100 * v['epoch']['padding_share']:.1f}")
    # real MAMe MR&VS: bucket's sampled steps cut far less padding than its epoch does, and its
    # epoch batches are markedly less diverse (flagged); pad's are not
    assert float(rows[("MR&VS", "bucket")][4]) > 3 * float(rows[("MR&VS", "bucket")][7])
    assert 'class="flag">15.6 / 1<' in html and 'class="flag">19.5' not in html


def test_projection_is_labelled_and_starts_from_the_measured_ratio_of_sums(report):
    root, html = report
    part = section(html, "Sampled steps vs a full epoch")
    assert "Projected cost of a full epoch (projected, not measured)" in part
    rows = table_rows(part, "Projected cost of a full epoch (projected, not measured)")
    steps = stored_steps(root)
    steps = steps[~steps["warmup"]]
    assert len(rows) == steps.groupby(["input_set", "remedy"]).ngroups == 6
    for r in rows:
        g = steps[(steps["input_set"] == r[2]) & (steps["remedy"] == r[3])]
        measured = g["seconds"].sum() / (g["informative_px"].sum() / 1e6)
        assert float(r[5]) == pytest.approx(measured, rel=5e-3)
        assert r[9].endswith("(projected)") and r[10].endswith("h (projected)")


def test_answers_name_the_diversity_cost_where_they_name_bucket(report):
    # real MAMe, over an epoch: bucket leaves single-medium batches in MR&VS and HR&VS (pad never
    # does), so every answer naming bucket says so, and no answer naming pad or accumulate does
    _, html = report
    answers = table_rows(section(html, "Remedies"), "Answers: which combination to use")
    cells = [cell for r in answers for cell in r[3:5]]
    assert any("bucket" in c for c in cells)
    for c in cells:
        assert ("less diverse than pad's over an epoch" in c) == ("bucket" in c), c
    assert any("15.6 distinct classes per batch of 32 on average (pad 19.5)" in c for c in cells) or \
        not any("bucket" in c for r in answers if r[2] == "MR&VS" for c in r[3:5])


def test_a_folder_without_a_plannable_definition_says_so(tmp_path):
    root = make_results(tmp_path / "g", input_sets=["MR&VS"], runs=1, steps=2, remedies=[PAPER, BUCKET])
    part = section(build_report([root], tmp_path / "g.html").read_text(encoding="utf-8"),
                    "Sampled steps vs a full epoch")
    assert "the plan could not be recomputed from sweep.json" in part


def test_the_report_uses_the_recorded_plan_and_never_the_dataset(tmp_path):
    """plan.json (what the driver planned) is shown as it stands; the dataset the definition
    names is never read, even where its metadata file is on disk (here: not a MAMe file)."""
    from hrvs_ray.plan.epoch import plan_record
    from hrvs_ray.plan.step_plans import StepPlans

    root = make_results(tmp_path / "p", sweep="remedies", clusters=["gen-a"], scopes=["node"],
                        input_sets=["MR&VS", "HR&VS"], runs=1, steps=3, remedies=[PAPER, BUCKET])
    sweep = load_sweep(REPO / "sweeps" / "remedies.yaml")
    ds = tmp_path / "ds"
    ds.mkdir()
    (ds / "MAMe_dataset.csv").write_text("not,a,mame,file\n")
    definition = sweep.to_dict()
    definition["dataset"]["path"] = str(ds)
    ident = json.loads((root / "sweep.json").read_text())
    ident["definition"] = definition
    (root / "sweep.json").write_text(json.dumps(ident, default=list))
    record = plan_record(sweep, StepPlans(planning_shapes(sweep, read_disk=False)[0]))
    for v in record["views"]:
        if (v["input_set"], v["batching"]) == ("MR&VS", "pad"):
            v["sampled"]["padding_share"] = 0.4321     # a value only the record holds
    (root / "plan.json").write_text(json.dumps(record))
    html = build_report([root], tmp_path / "p.html").read_text(encoding="utf-8")
    rows = table_rows(section(html, "Sampled steps vs a full epoch"),
                      "Padding and label diversity: sampled steps vs a full epoch")
    assert [r[4] for r in rows if r[0] == "MR&VS" and r[1] == "pad"] == ["43.2"]
    (root / "plan.json").unlink()                   # an older folder: recomputed, still not from ds/
    html = build_report([root], tmp_path / "q.html").read_text(encoding="utf-8")
    assert "could not be recomputed" not in html and "could not be read" not in html
