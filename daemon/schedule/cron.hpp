#pragma once
// Cron expressions and time zones for schedules (docs/api.md, "Schedules"): parsing with errors
// that name the wrong part, and the next slot after a time in an IANA time zone, with the DST
// rules of the contract (a local time that does not exist is skipped; one that occurs twice
// runs once, at its first occurrence). Time zones come from the system's tz database through
// Howard Hinnant's date library (Debian's libhowardhinnant-date-dev).
//
// Thread-safety: Cron and TimeZone are immutable values; every function is safe to call from
// any thread.

#include "config/model.hpp"

#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace snapvirt::daemon::schedule {

// A bad expression. `part` is "second", "minute", "hour", "day_of_month", "month", "day_of_week" or
// "expression" (the whole: wrong number of fields, an unknown @word, never matches).
class CronError : public std::invalid_argument {
public:
    CronError(std::string part, const std::string& message) : std::invalid_argument(message), part_(std::move(part)) {}
    const std::string& part() const { return part_; }

private:
    std::string part_;
};

class TimeZoneError : public std::invalid_argument {
public:
    using std::invalid_argument::invalid_argument;
};

// An IANA time zone ("UTC", "Europe/Berlin"). A default-constructed TimeZone reads as UTC.
class TimeZone {
public:
    // Throws TimeZoneError for a name the tz database does not know.
    static TimeZone locate(const std::string& name);
    const std::string& name() const { return name_; }

    // Local wall-clock fields of a UTC time in this zone.
    struct Local {
        int year, month, day, hour, minute, second, weekday;  // weekday 0 = Sunday
    };
    Local local(TimeMs t) const;
    // "2026-11-27", "02:00", "2026-11-27 02:00" of a UTC time in this zone.
    std::string date(TimeMs t) const;
    std::string time(TimeMs t) const;

    struct Impl;
private:
    friend class Cron;
    std::string name_;
    std::shared_ptr<const Impl> impl_;
};

class Cron {
public:
    // Five fields, six (a leading seconds field), or an @word (docs/api.md). Throws CronError. An expression that can never
    // match (e.g. "0 0 30 2 *") is refused with part "expression". As in Vixie cron, a day field
    // that starts with '*' ("*", "*/2") does not restrict the day: only when neither does, a day
    // matching either runs; otherwise a day must match both.
    static Cron parse(std::string_view text);

    // The first slot strictly after `after`, in `zone`: a whole second (UTC ms; a whole minute
    // for five fields). Local times in a spring-forward gap are skipped; a local time that occurs
    // twice gives its first occurrence only. The search goes day by day, at most 60 years ahead
    // (a Feb 29 on a given weekday can be decades away), so nullopt means practically never
    // (parse refuses expressions that can never match).
    std::optional<TimeMs> next_after(TimeMs after, const TimeZone& zone) const;

    // The newest slot at or before `at` and after `not_before` (for catch-up), or nullopt. Searches
    // backwards day by day, so a long window costs only as many days as it spans without a slot.
    std::optional<TimeMs> last_at_or_before(TimeMs at, TimeMs not_before, const TimeZone& zone) const;

    const std::string& text() const { return text_; }

    struct Fields;
private:
    std::string text_;
    std::shared_ptr<const Fields> fields_;
};

// "90m", "12h", "7d", "4w" → a duration; nullopt for anything else (also 0 and overflow).
std::optional<std::chrono::milliseconds> parse_max_age(std::string_view text);

}  // namespace snapvirt::daemon::schedule
