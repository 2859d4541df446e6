"""rnnlm.contention: which runs' timings other work on the machine distorted."""

from run_folders import contended_conditions, quiet

from rnnlm.contention import conditions, contended


def test_a_load_above_the_cpus_or_a_starved_cpu_run_is_contended():
    assert contended(quiet(10.0, 5000.0)) == ""
    assert contended(quiet(10.0, 5000.0, threads=2, cpus=2)) == ""  # its own threads: load 2
    assert contended({**quiet(10.0, 5000.0), "load_end": 2.6}) == "load 2.6 on 2 CPUs"
    starved = contended_conditions(10.0, 5000.0, load=1.0, share=0.3)
    assert contended(starved) == "0.30 CPU-s per s"
    assert contended(starved, device="gpu") == ""  # a GPU run waits for its device
    assert contended(None) == ""  # a run from before conditions were recorded


def test_conditions_relate_cpu_time_to_training_time_and_tokens():
    held = conditions(cpu_seconds=3.0, train_seconds=4.0, tokens=6000, threads=1, load_start=0.5)
    assert held["cpu_per_wall"] == 0.75 and held["tokens_per_cpu_s"] == 2000
    assert held["load_start"] == 0.5 and held["load_end"] >= 0 and held["cpus"] >= 1
    assert conditions(0.0, 1.0, 10, 1, None)["tokens_per_cpu_s"] is None
