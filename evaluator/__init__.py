"""The AIcrowd Music Demixing 2021 evaluator interface (replaced by the grader's own copy when graded)."""
