# The schedules soak (tests/stress/schedule-soak.sh, lane 12) reads the catalog's run rows with the
# sqlite3 shell to prove that no slot ran twice (the e2e tests use SQLite's C API instead, so lane
# 13's root needs no shell).
TEST_PACKAGES+=(sqlite3)
