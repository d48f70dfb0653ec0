"""The performance chapter's tables and sentences come from the benchmark's JSON rows."""

from medvision.book.speed import describe_time_to_score, time_to_score_table


def _row(seed, target, plain_s, reached, mean_reached, acc, auc):
    return {"seed": seed, "target_val_macro_f1": target, "plain_seconds": plain_s,
            "medvision_seconds_to_target": reached, "ratio": plain_s / reached if reached else None,
            "mean_target_val_macro_f1": 0.96, "mean_plain_seconds": 75.0,
            "medvision_seconds_to_mean_target": mean_reached,
            "ratio_to_mean_target": 75.0 / mean_reached if mean_reached else None,
            "plain_test_accuracy": acc, "medvision_test_accuracy": acc + 0.01, "plain_test_auroc": auc,
            "medvision_test_auroc": auc + 0.02, "plain_timeline": [], "medvision_timeline": []}


def test_time_to_score_sentences_count_what_the_rows_say():
    rows = [_row(0, 0.95, 70.0, 35.0, 35.0, 0.85, 0.93), _row(1, 0.97, 80.0, None, 30.0, 0.87, 0.95)]
    table = time_to_score_table(rows)
    assert list(table.index) == [0, 1] and table.loc[0, "ratio"] == 2.0
    text = describe_time_to_score(rows)
    assert "On 1 of 2 seed(s)" in text and "2.00x to 2.00x sooner" in text
    assert "(0.960) was reached on 2 of 2 seed(s), 2.14x to 2.50x sooner than the plain loop's mean time (75 s)" in text
    assert "Test accuracy: plain 0.860 ± 0.014, medvision 0.870 ± 0.014" in text
    none = describe_time_to_score([_row(0, 0.99, 70.0, None, None, 0.8, 0.9)])
    assert "reached on 0 of 1 seed(s). Test accuracy" in none
    assert describe_time_to_score([]) == "No time-to-score runs."


DATA = {"medvision_images_per_s": 2400.0, "torchvision_images_per_s": 600.0, "ratio": 4.0, "peak_rss_mb": 512.0,
        "output_px": 64, "cache_build_s": 1.25, "images": 1000, "first_epoch_ratio": 1.5, "fallback": False}
HEAD = {"cached_s_per_epoch": 0.05, "backbone_s_per_epoch": 2.5, "ratio": 50.0, "peak_rss_mb": 300.0,
        "ratio_20_epochs_with_extraction": 12.3, "images": 400}


def test_pipeline_table_and_sentence_read_the_benchmark_json():
    from medvision.book.speed import describe_data_fallback, describe_pipeline, pipeline_table

    table = pipeline_table(DATA, HEAD)
    assert list(table["ratio"]) == [4.0, 50.0] and table.iloc[0]["medvision"] == "2400 images/s"
    text = describe_pipeline(DATA, HEAD)
    assert "4.0x the images per second" in text and "(1.25 s for 1000 images" in text and "50x faster" in text
    assert "12.3x" in text
    assert describe_data_fallback(DATA) == "" and "fallback" in describe_data_fallback({**DATA, "fallback": True})


def test_throughput_table_labels_each_row():
    from medvision.book.speed import throughput_table

    rows = throughput_table({"rows": [{"kind": "train", "strategy": "full", "size": 64, "ratio": 2.0},
                                      {"kind": "predict", "strategy": "-", "size": 64, "ratio": 3.0}]})
    assert list(rows.index) == ["train full 64px", "predict 64px"]


def test_chapter_times_and_their_sentence():
    from medvision.book.speed import chapter_times, describe_chapter_times

    times = chapter_times({"notebooks": {"01_eda": {"seconds": 10.0, "runs": {}},
                                         "02_training_strategies": {"seconds": 50.5,
                                                                    "runs": {"trained": 3, "reused": 1}}}})
    assert times.loc["02_training_strategies", "training runs"] == "3 trained, 1 reused"
    assert times.loc["01_eda", "training runs"] == "—"
    assert "took 60 s in total under the **smoke** profile" in describe_chapter_times(times, "smoke")
    assert chapter_times({}).empty
