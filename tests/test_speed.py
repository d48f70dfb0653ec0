"""The performance chapter's tables and sentences come from the benchmark's JSON rows."""

from medvision.speed import describe_time_to_score, time_to_score_table


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
