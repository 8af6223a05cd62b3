"""Run folders: preparing, launching and reading back runs, reference and tracked."""
