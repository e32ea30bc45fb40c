# What the security suite needs (sourced by scripts/lib/common.sh):
#   openssl              certificates made by the TLS / mTLS tests
#   clang, libclang-rt   the libFuzzer harness (tests/fuzz; -fsanitize=fuzzer lives in
#                        libclang-rt-14-dev on Debian 12) and its ASan/UBSan runtime
#   passwd               useradd/groupadd for the Unix-socket permission test
TEST_PACKAGES+=(openssl clang libclang-rt-14-dev passwd)
