"""Load and bulk tests, run by `make stress` (deselected from `make test`)."""
