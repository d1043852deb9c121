"""Release rules judged against a run's results (pure: rules and results in, verdicts out), then the files CI
reads (JUnit, the step summary) and the terminal table."""
