"""Stage 10, release rules judged against results, and the files CI reads (JUnit, the step summary)."""
