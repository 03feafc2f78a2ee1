"""Two-way sync: change detection against what we last knew, echo suppression, conflicts."""
