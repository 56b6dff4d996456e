-- Problems rejected while loading, with the row they came from and why.
SELECT source, row, reason, preview FROM rejected_problems ORDER BY source, row;
