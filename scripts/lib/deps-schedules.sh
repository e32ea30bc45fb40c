# The schedule tests (tests/e2e/test_schedules.cpp, tests/stress/schedule-soak.sh) read the
# catalog's run rows with the sqlite3 shell to prove that no slot ran twice.
TEST_PACKAGES+=(sqlite3)
