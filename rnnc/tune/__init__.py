"""`rnnc tune`: hyperparameter search on Optuna over a spec's `--set` paths.

`space` reads the search space file (positions on every problem) and checks its ranges
against the spec; `trial` runs one trial as an `rnnc train` subprocess, reporting its
per-epoch monitored value to Optuna; `study` opens or resumes the study and runs trials
in parallel; `report` writes the table, best.yaml and the plots. Optuna is imported
lazily (the `tune` extra); torch never: trials train in their own processes.
"""
