#pragma once
// Log set-up: readable lines on a terminal or in a file, syslog priority prefixes when stderr
// is the journal (JOURNAL_STREAM), or one JSON object per line.

#include <string>

namespace snapvirt::daemon {

enum class LogFormat { text, json };

void setup_logging(const std::string& level, LogFormat format);
void set_log_level(const std::string& level);

}  // namespace snapvirt::daemon
