"""Report stage, the tables through `rnnlm table|compare|sweep|provenance`: statistics that match
the runs' files and scipy, verdicts, sweeps chosen on validation, readable HTML."""

import json
from html import unescape
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from conftest import rnnlm
from run_folders import contended_conditions, make_cache, make_run
from scipy import stats

from rnnlm import cli
from rnnlm.report import CACHE_NUMBERS

GRU, LSTM = [100.0, 101.5, 99.25], [130.0, 128.5, 131.0]


class Cells(HTMLParser):
    """The header and cell texts of each HTML table, by its id."""

    def __init__(self, text):
        super().__init__()
        self.tables, self.table, self.cell = {}, None, None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.table = self.tables.setdefault(dict(attrs)["id"], [])
        elif tag == "tr":
            self.table.append([])
        elif tag in ("td", "th"):
            self.cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.table[-1].append(self.cell.strip())
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


def html_rows(path, table_id="table"):
    header, *rows = Cells(path.read_text()).tables[table_id]
    return [dict(zip(header, row, strict=True)) for row in rows]


@pytest.fixture
def results(tmp_path):
    return tmp_path / "results"


@pytest.fixture
def seeded(results):
    """tutorial: gru clearly below lstm over three seeds each; 'big' lstm with two seeds."""
    runs = [make_run(results, "tutorial", mode, seed=seed, test_ppl=ppl)
            for mode, ppls in (("lstm", LSTM), ("gru", GRU))
            for seed, ppl in enumerate(ppls, 1)]
    return runs + [make_run(results, "big", "lstm", seed=s, test_ppl=p)
                   for s, p in ((1, 129.0), (2, 130.5))]


def table(runs, out, *extra):
    paths = {name: out / name for name in ("runs.csv", "runs.html", "perplexity.csv",
                                           "perplexity.md", "perplexity.html")}
    code = cli.main(["table", "--runs", *map(str, runs), "--runs-csv", str(paths["runs.csv"]),
                     "--runs-html", str(paths["runs.html"]), "--csv", str(paths["perplexity.csv"]),
                     "--md", str(paths["perplexity.md"]), "--html", str(paths["perplexity.html"]),
                     *extra])
    assert code == 0
    return paths


def compare(runs, out, *extra):
    paths = [out / f"comparisons.{ext}" for ext in ("csv", "md", "html")]
    assert cli.main(["compare", "--runs", *map(str, runs), "--csv", str(paths[0]), "--md",
                     str(paths[1]), "--html", str(paths[2]), *extra]) == 0
    return paths


def test_table_mean_sd_and_interval_are_those_of_the_runs_test_json(seeded, results):
    paths = table(seeded, results, "--published", "big=120")
    perplexity = pd.read_csv(paths["perplexity.csv"])
    assert list(zip(perplexity["experiment"], perplexity["mode"], strict=True)) == [
        ("tutorial", "lstm"), ("tutorial", "gru"), ("big", "lstm")]
    for (experiment, mode), row in perplexity.set_index(["experiment", "mode"]).iterrows():
        values = [json.loads(path.read_text())["test_ppl"]
                  for path in sorted((results / experiment / mode).glob("seed*/test.json"))]
        low, high = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values),
                                     scale=stats.sem(values))
        assert row["n"] == len(values)
        assert row["test_ppl_mean"] == pytest.approx(np.mean(values), rel=1e-12)
        assert row["test_ppl_sd"] == pytest.approx(np.std(values, ddof=1))
        assert (row["test_ppl_ci_low"], row["test_ppl_ci_high"]) == pytest.approx((low, high))
        assert (row["test_ppl_min"], row["test_ppl_max"]) == (min(values), max(values))
    big = perplexity.iloc[2]
    assert big["gap_pct"] == pytest.approx(100 * (129.75 / 120 - 1))
    runs = pd.read_csv(paths["runs.csv"])
    assert len(runs) == 8 and list(runs.columns) == [
        "experiment", "corpus", "mode", "seed", "best_valid_ppl", "test_ppl", "epochs",
        "train_seconds", "wall_seconds", "tokens_per_s", "param_count", "tokens_per_cpu_s",
        "cpu_per_wall", "load_start", "load_end", "contention", "trained_as", "test_ppl_cache",
        "cache_base_test_ppl", "cache_theta", "cache_lambda", "cache_window",
        "test_ppl_dynamic", "dynamic_base_test_ppl", "dynamic_lr", "dynamic_decay",
        "test_ppl_dynamic_cache"]
    assert runs.loc[:, "test_ppl_cache":].isna().all().all()  # no cache or dynamic evaluation
    assert "dynamic" not in paths["perplexity.md"].read_text()
    assert runs["trained_as"].isna().all() and "trained as" not in html_rows(paths["runs.html"])[0]
    assert "Trained once" not in paths["perplexity.md"].read_text()


def test_shared_runs_name_the_run_they_were_trained_as_and_the_perplexity_table_says_so(
        seeded, results):
    shared = []
    for source in seeded[:3]:  # tutorial lstm's three seeds
        for name in ("model.params", "model.json"):
            (source / name).write_text(name)
        point = results / "sw" / "lr~1.0" / "lstm" / source.name
        assert cli.main(["share", "--from", str(source), "--out-dir", str(point)]) == 0
        (point / "test.json").write_bytes((source / "test.json").read_bytes())
        shared.append(point)
    paths = table([*seeded, *shared], results)
    runs = pd.read_csv(paths["runs.csv"])
    sources = ["tutorial/lstm/seed1", "tutorial/lstm/seed2", "tutorial/lstm/seed3"]
    assert list(runs.loc[runs["experiment"] == "sw/lr~1.0", "trained_as"]) == sources
    assert runs["trained_as"].notna().sum() == 3
    assert [row["trained as"] for row in html_rows(paths["runs.html"])][-3:] == sources
    note = paths["perplexity.md"].read_text().strip().splitlines()[-1]
    assert note.startswith("Trained once: ") and note.endswith(
        "sw/lr~1.0, 3 of 3 runs, as tutorial's.")
    assert note in unescape(paths["perplexity.html"].read_text())


def test_the_cache_s_numbers_are_read_only_where_asked_and_summarized_like_test(seeded,
                                                                               results):
    with_cache = [106.0, 104.5, 105.25]
    caches = [make_cache(run, ppl, theta=t) for run, ppl, t in zip(
        seeded[:3], with_cache, (0.5, 0.7, 0.5), strict=True)]
    make_cache(seeded[6], 90.0)  # big's: present in its folder, but not asked for
    paths = table(seeded, results, "--caches", *map(str, caches))
    runs = pd.read_csv(paths["runs.csv"])
    lstm = runs[(runs["experiment"] == "tutorial") & (runs["mode"] == "lstm")]
    assert list(lstm["test_ppl_cache"]) == with_cache and list(lstm["cache_theta"]) == [0.5, 0.7,
                                                                                        0.5]
    assert list(lstm["cache_base_test_ppl"]) == pytest.approx([1.1 * p for p in with_cache])
    assert runs.loc[runs["experiment"] == "big", list(CACHE_NUMBERS)].isna().all().all()
    assert runs.loc[runs["mode"] == "gru", "test_ppl_cache"].isna().all()
    perplexity = pd.read_csv(paths["perplexity.csv"]).set_index(["experiment", "mode"])
    row = perplexity.loc["tutorial", "lstm"]
    low, high = stats.t.interval(0.95, 2, loc=np.mean(with_cache), scale=stats.sem(with_cache))
    assert row["test_ppl_cache_mean"] == pytest.approx(np.mean(with_cache))
    assert (row["test_ppl_cache_ci_low"], row["test_ppl_cache_ci_high"]) == pytest.approx(
        (low, high))
    assert perplexity[["test_ppl_cache_mean"]].drop(index=[("tutorial", "lstm")]).isna().all().all()
    shown = html_rows(paths["perplexity.html"])
    assert shown[0]["cache test ppl"] == "105.25" and shown[1]["cache test ppl"] == ""
    assert "continuous cache pointer" in paths["perplexity.md"].read_text()
    assert html_rows(paths["runs.html"])[1]["θ"] == "0.7"
    csv, md, _ = compare(seeded, results, "--caches", *map(str, caches))
    rows = pd.read_csv(csv).set_index("scope")
    cache_row = rows.loc["the cache in tutorial"]
    assert (cache_row["a"], cache_row["b"]) == ("lstm with the cache", "lstm without it (batch 1)")
    t = stats.ttest_ind(with_cache, [1.1 * p for p in with_cache], equal_var=False)
    assert cache_row["p_value"] == pytest.approx(t.pvalue)
    assert cache_row["verdict"] == "lstm with the cache better"
    assert "modes in tutorial with the cache" not in rows.index  # gru has no cache
    assert "batch-1 test stream without it" in md.read_text()


def test_a_cache_outside_the_runs_given_is_refused(seeded, results, capsys):
    cache = make_cache(seeded[0], 100.0)
    code = cli.main(["table", "--runs", *map(str, seeded[1:]), "--caches", str(cache),
                     "--runs-csv", str(results / "r.csv"), "--runs-html", str(results / "r.html"),
                     "--csv", str(results / "p.csv"), "--md", str(results / "p.md"), "--html",
                     str(results / "p.html")])
    assert code == 1 and "cache.json is not in a run folder given" in capsys.readouterr().err


def test_html_and_markdown_round_numbers_and_n_1_leaves_spread_empty(results):
    runs = [make_run(results, "tutorial", "lstm", seed=1, test_ppl=510.7239746876005),
            make_run(results, "tutorial", "gru", seed=1, test_ppl=480.0)]
    paths = table(runs, results)
    rows = html_rows(paths["perplexity.html"])
    assert rows[0]["test ppl"] == "510.72" and rows[0]["n"] == "1"
    assert rows[0]["sd"] == rows[0]["95% CI"] == ""
    assert rows[0]["tokens/s"] == "4,568" and rows[0]["parameters"] == "12,345"
    assert "510.7239746876005" not in paths["perplexity.html"].read_text()
    assert "510.7239746876005" in paths["perplexity.csv"].read_text()  # full precision kept
    md = paths["perplexity.md"].read_text().splitlines()
    assert md[0].startswith("| experiment | corpus | mode | n | parameters | test ppl | sd |")
    assert md[2].startswith("| tutorial | ptb | lstm | 1 | 12,345 | 510.72 |  |  | 510.72 |")
    assert html_rows(paths["runs.html"])[1]["test ppl"] == "480.00"
    csv = pd.read_csv(paths["perplexity.csv"])
    assert csv["test_ppl_sd"].isna().all() and csv["test_ppl_ci_low"].isna().all()


def test_comparisons_name_the_better_mode_and_match_welch(seeded, results):
    csv, md, html = compare(seeded, results)
    rows = pd.read_csv(csv)
    within = rows[rows["scope"] == "modes in tutorial"].iloc[0]
    assert (within["a"], within["b"], within["verdict"]) == ("lstm", "gru", "gru better")
    result = stats.ttest_ind(LSTM, GRU, equal_var=False)
    ci = result.confidence_interval(0.95)
    assert within["p_value"] == pytest.approx(result.pvalue)
    assert (within["diff"], within["diff_ci_low"], within["diff_ci_high"]) == pytest.approx(
        (np.mean(LSTM) - np.mean(GRU), ci.low, ci.high))
    across = rows[rows["scope"] == "lstm across experiments on ptb"].iloc[0]
    assert (across["a"], across["b"], across["n_a"], across["n_b"]) == ("tutorial", "big", 3, 2)
    assert across["verdict"] == "no difference at n=2 and 3"
    assert len(rows) == 2
    shown = html_rows(html)
    assert shown[0]["verdict"] == "gru better" and shown[0]["n"] == "3"
    assert shown[0]["a − b [95% CI]"] == (f"{np.mean(LSTM) - np.mean(GRU):+.2f} "
                                         f"[{ci.low:+.2f}, {ci.high:+.2f}]")
    assert "Welch's t-test" in md.read_text() and "p < 0.05" in unescape(html.read_text())


def test_experiments_on_different_corpora_are_not_compared(seeded, results):
    csv, _, _ = compare(seeded, results, "--corpus", "big=wikitext-2")
    assert pd.read_csv(csv)["scope"].tolist() == ["modes in tutorial"]


def test_one_seed_per_group_says_no_test_is_possible_instead_of_numbers(results):
    runs = [make_run(results, "tutorial", mode, test_ppl=ppl)
            for mode, ppl in (("lstm", 130.0), ("gru", 100.0), ("rnn_tanh", 150.0))]
    csv, md, html = compare(runs, results)
    assert md.read_text().startswith("No test is possible: every group has one run (n = 1)")
    assert "seeds: [1, 2, 3]" in md.read_text() and "seeds: [1, 2, 3]" in html.read_text()
    assert "130" not in md.read_text() and "<table" not in html.read_text()
    rows = pd.read_csv(csv)
    assert len(rows) == 3 and (rows["verdict"] == "no test at n=1").all()
    assert rows[["diff", "diff_ci_low", "diff_ci_high", "p_value"]].isna().all().all()


def test_comparing_through_the_console_script(seeded, results):
    out = [results / f"c.{ext}" for ext in ("csv", "md", "html")]
    result = rnnlm("compare", "--runs", *seeded, "--csv", out[0], "--md", out[1], "--html", out[2])
    assert result.returncode == 0, result.stderr
    assert "| modes in tutorial | lstm | gru | 3 |" in out[1].read_text()


def sweep_runs(results):
    """s: lr x dropout, 2 x 2, two seeds. lstm's lowest test is lr=2, dropout=0.5, but its
    lowest validation is lr=1, dropout=0; gru's best is lr=2, dropout=0 on both."""
    points = {(1, 0): (110, 100, 140, 150), (1, 0.5): (120, 130, 150, 160),
              (2, 0): (130, 90, 100, 95), (2, 0.5): (125, 80, 130, 120)}
    runs = []
    for (lr, dropout), (lstm_valid, lstm_test, gru_valid, gru_test) in points.items():
        for mode, valid, test in (("lstm", lstm_valid, lstm_test), ("gru", gru_valid, gru_test)):
            runs += [make_run(results, f"s/lr~{lr}/dropout~{dropout}", mode, seed=seed,
                              valid_ppl=valid + seed, test_ppl=test + seed) for seed in (1, 2)]
    return runs


def sweep(runs, results, name="s"):
    paths = [results / "sweeps" / f"{name}.{ext}" for ext in ("csv", "md", "html", "png")]
    code = cli.main(["sweep", "--name", name, "--runs", *map(str, runs), "--csv", str(paths[0]),
                     "--md", str(paths[1]), "--html", str(paths[2]), "--plot", str(paths[3])])
    return code, paths


def test_sweep_best_point_is_chosen_on_validation_even_where_test_disagrees(results):
    code, (csv, md, html, png) = sweep(sweep_runs(results), results)
    assert code == 0 and png.read_bytes().startswith(b"\x89PNG")
    rows = pd.read_csv(csv)
    assert len(rows) == 4 * 2 and list(rows.columns[:4]) == ["sweep", "experiment", "lr",
                                                             "dropout"]
    assert rows["n"].eq(2).all()
    best = rows[rows["best"]].set_index("mode")
    assert (best.loc["lstm", "lr"], best.loc["lstm", "dropout"]) == (1, 0)
    assert (best.loc["gru", "lr"], best.loc["gru", "dropout"]) == (2, 0)
    lstm = rows[rows["mode"] == "lstm"]
    assert lstm["test_ppl_mean"].idxmin() != lstm["best_valid_ppl_mean"].idxmin()
    assert best.loc["lstm", "verdict_vs_best"] == "best on validation"
    other = lstm[(lstm["lr"] == 2) & (lstm["dropout"] == 0.5)].iloc[0]
    assert other["diff_vs_best"] == pytest.approx(80 - 100)
    assert other["verdict_vs_best"] == "this point better"
    assert "Best point on validation perplexity, per mode: lstm at lr=1, dropout=0 " in (
        html.read_text())
    shown = html_rows(html)
    assert [row["best"] for row in shown[:4]] == ["✓", "", "", ""]
    assert list(shown[0])[:3] == ["lr", "dropout", "mode"]


def test_sweep_with_a_run_of_another_experiment_is_refused(results, capsys):
    runs = sweep_runs(results)[:2] + [make_run(results, "tutorial", "lstm")]
    code, paths = sweep(runs, results)
    err = capsys.readouterr().err.strip()
    assert code == 1 and err == (
        "rnnlm sweep: error: experiment tutorial is not a point of sweep s; pass only its run "
        "folders RESULTS/s/KEY~VALUE/.../MODE/seedN")
    assert not any(path.exists() for path in paths)


def test_sweep_modes_are_compared_at_their_best_points(results):
    csv, _, _ = compare(sweep_runs(results), results)
    rows = pd.read_csv(csv)
    assert rows["scope"].tolist() == ["modes at their best points of s"]
    row = rows.iloc[0]
    assert (row["experiment_a"], row["experiment_b"]) == ("s/lr~1/dropout~0", "s/lr~2/dropout~0")
    assert (row["a"], row["b"]) == ("lstm (lr=1, dropout=0)", "gru (lr=2, dropout=0)")
    assert row["verdict"] == "gru (lr=2, dropout=0) better"
    assert row["test_ppl_mean_a"] == pytest.approx(101.5)
    assert row["test_ppl_mean_b"] == pytest.approx(96.5)


def test_provenance_lists_what_runs_share_once_and_what_differs_per_run(seeded, results):
    csv, html = results / "provenance.csv", results / "provenance.html"
    source = results / "source.json"  # as the download stage records it
    source.write_text(json.dumps({"corpus": "mine", "url": "file:///mirror", "code": "c" * 16,
                                  "read": {"train": "/mirror/train.txt"}, "sha256": {
                                      "train": "d" * 64}, "downloaded": "2025-01-01T00:00:00"}))
    assert cli.main(["provenance", "--runs", *map(str, seeded), "--corpus", "tutorial=mine",
                     "big=mine", "--sources", str(source), "--csv", str(csv),
                     "--html", str(html)]) == 0
    table = pd.read_csv(csv)
    assert len(table) == len(seeded) and table["settings_sha256"].str.len().eq(64).all()
    assert (table["download.url"] == "file:///mirror").all()  # what the download read
    assert (table["download.sha256.train"] == "d" * 64).all()
    assert "download.corpus" not in table  # the run's corpus is its own column
    shared = {row["field"]: row["value"] for row in html_rows(html, "shared")}
    assert shared["mxnet"] == "1.9.1" and shared["data_sha256.train"] == "a" * 12
    assert shared["corpus"] == "mine" and shared["download.read.train"] == "/mirror/train.txt"
    assert shared["mxnet_build"] == "mxnet 1.9.1 (CPU)"
    assert shared["train_code"] == "0123456789abcdef"
    recorded = html_rows(html, "hyperparameters")  # what each experiment's runs recorded
    assert recorded == [{"key": "lr", "tutorial": "1.0", "big": "1.0"}]
    per_run = html_rows(html, "runs")
    assert len(per_run) == len(seeded)
    assert {"experiment", "mode", "seed", "settings_sha256"} <= set(per_run[0])
    assert len(per_run[0]["settings_sha256"]) == 12


def test_missing_test_json_is_a_one_line_error_naming_the_stage(seeded, results):
    (seeded[1] / "test.json").unlink()
    result = rnnlm("table", "--runs", *seeded, "--runs-csv", results / "r.csv", "--runs-html",
                   results / "r.html", "--csv", results / "t.csv", "--md", results / "t.md",
                   "--html", results / "t.html")
    assert result.returncode == 1 and result.stderr.strip().splitlines() == [
        f"rnnlm table: error: {seeded[1] / 'test.json'}: file not found; rerun the evaluate "
        "stage for this run"]
    assert not (results / "r.csv").exists() and not (results / "t.csv").exists()


def test_table_sets_the_published_perplexity_and_gap_beside_preset_runs(results):
    runs = [make_run(results, "zaremba-small", "lstm", seed=seed, test_ppl=ppl)
            for seed, ppl in ((1, 120.0), (2, 120.45))]
    paths = table(runs + [make_run(results, "tutorial", "lstm", test_ppl=150.0)], results,
                  "--published", "zaremba-small=114.5")
    perplexity = pd.read_csv(paths["perplexity.csv"])
    assert perplexity["published_test_ppl"].tolist()[0] == 114.5
    assert perplexity["gap_pct"].tolist()[0] == pytest.approx(5.0)  # mean 120.225: 5% above
    assert perplexity[["published_test_ppl", "gap_pct"]].iloc[1].isna().all()
    rows = html_rows(paths["perplexity.html"])
    assert (rows[0]["published test ppl"], rows[0]["gap %"]) == ("114.5", "+5.0")
    assert rows[1]["published test ppl"] == rows[1]["gap %"] == ""


@pytest.mark.parametrize("bad", ["big", "big=", "big=-3", "big=x", "big:80"])
def test_a_published_value_that_is_not_a_positive_number_is_a_usage_error(bad, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.build_parser().parse_args(["table", "--runs", "r", "--runs-csv", "a", "--runs-html",
                                       "e", "--csv", "b", "--md", "c", "--html", "d",
                                       "--published", bad])
    assert exit_.value.code == 2 and "is not EXPERIMENT=PPL" in capsys.readouterr().err


def test_one_group_has_nothing_to_compare(results):
    csv, md, _ = compare([make_run(results, "tutorial", "lstm", seed=s) for s in (1, 2)], results)
    assert md.read_text() == "Nothing to compare: one group only.\n"
    assert pd.read_csv(csv).empty


def test_runs_timed_under_contention_are_marked_with_their_cpu_time_measure(results):
    """rnn_relu timed while the machine was busy looks slower by tokens/s; the tables say why,
    and its tokens per CPU-second says it is not."""
    quiet = make_run(results, "tutorial", "rnn_tanh", tokens_per_s=14000.0)
    busy = make_run(results, "tutorial", "rnn_relu", tokens_per_s=1000.0,
                    conditions=contended_conditions(8.0, 1000.0, load=5.5, share=0.07))
    old = make_run(results, "tutorial", "gru")  # from before conditions were recorded
    summary = json.loads((old / "summary.json").read_text())
    del summary["provenance"]["conditions"]
    (old / "summary.json").write_text(json.dumps(summary))
    paths = table([quiet, busy, old], results)
    runs = pd.read_csv(paths["runs.csv"]).set_index("mode")
    runs["contention"] = runs["contention"].fillna("")  # a CSV's empty cell
    assert runs.loc["rnn_tanh", "contention"] == "" and runs.loc["gru", "contention"] == ""
    assert runs.loc["rnn_relu", "contention"] == "load 5.5 on 2 CPUs; 0.07 CPU-s per s"
    assert runs.loc["rnn_relu", "tokens_per_cpu_s"] == pytest.approx(1000 / 0.07)
    assert runs.loc["rnn_tanh", "tokens_per_cpu_s"] == pytest.approx(14000)
    assert np.isnan(runs.loc["gru", "tokens_per_cpu_s"])  # not recorded: empty, not guessed
    shown = {row["mode"]: row for row in html_rows(paths["runs.html"])}
    assert shown["rnn_relu"]["timed under contention"] == "load 5.5 on 2 CPUs; 0.07 CPU-s per s"
    assert shown["rnn_relu"]["load start, end"] == "5.5, 5.5"
    assert shown["rnn_tanh"]["CPU-s per s"] == "1.00"
    perplexity = pd.read_csv(paths["perplexity.csv"]).set_index("mode")
    assert perplexity["contended"].to_dict() == {"rnn_tanh": 0, "rnn_relu": 1, "gru": 0}
    assert perplexity.loc["rnn_relu", "tokens_per_cpu_s_mean"] == pytest.approx(1000 / 0.07)
    assert "timed under contention" in paths["perplexity.md"].read_text()
